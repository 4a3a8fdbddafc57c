// Chat-template engine: renders Jinja2 chat templates exactly as Hugging Face transformers applies them
// (jinja2 3.1 with trim_blocks, lstrip_blocks and loop controls; tojson = Python json.dumps without HTML
// escaping; globals raise_exception(msg) and strftime_now(fmt)).
//
// Usage:
//   auto tmpl = rf::chat::ChatTemplate::parse(source);            // parse once ...
//   rf::chat::ChatRequest req;
//   req.messages = nlohmann::ordered_json::parse(R"([{"role":"user","content":"Hi"}])");
//   req.add_generation_prompt = true;
//   auto prompt = tmpl->render_chat(req);                        // ... render many times
//   if (!prompt) { /* prompt.error_message(): "chat template: line 3: System role not supported" */ }
//
// Context values are nlohmann::ordered_json so that object key order (which tojson prints) is the caller's.
// Supported: {{ }}, {% %}, {# #}, whitespace control (-, +), raw, if/elif/else, for (with else, `if` filter,
// loop.index/index0/revindex/revindex0/first/last/length/previtem/nextitem, break/continue), set (also
// tuple unpacking, block set with filters, namespace attributes), macro (defaults, varargs, kwargs, caller),
// call blocks, filter blocks, with; Python semantics for truthiness, ==, <, + - * / // % **, slicing,
// `in`, str()/repr() of values; Jinja2's default Undefined (prints as "", raises when used in arithmetic,
// attribute access, calls). Filters, tests and methods: see builtins.h.
//
// A template that raises (raise_exception, undefined use, type errors) yields an error, never a partial
// render. Work is bounded (RenderOptions) so that no template can hang or exhaust memory.
#pragma once

#include <cstdint>
#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace rf::chat {

struct RenderOptions {
  // The time strftime_now() formats; the local wall-clock time when unset (tests set a fixed one).
  std::optional<std::tm> now;
  size_t max_output_bytes = size_t{16} << 20;  // the rendered text and any single string value
  size_t max_elements = size_t{4} << 20;       // list/dict elements allocated during one render
  uint64_t max_steps = 20'000'000;             // statements + expression nodes evaluated
  int max_call_depth = 64;                     // nested macro calls
};

struct ChatRequest {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();  // [{"role": ..., "content": ...}, ...]
  bool add_generation_prompt = false;
  std::string bos_token;
  std::string eos_token;
  std::optional<nlohmann::ordered_json> tools;  // passed as `tools` when set (else `tools` is undefined)
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();  // more variables (e.g. "date_string")
};

struct Stmt;

class ChatTemplate {
 public:
  // Parses a template. Errors say the line: "chat template: line 4: unexpected end of template, expected 'endif'".
  static Expected<ChatTemplate> parse(std::string_view source);

  // Renders with `context` (a JSON object) as the template variables.
  Expected<std::string> render(const nlohmann::ordered_json& context, const RenderOptions& opts = {}) const;
  // Renders a chat: messages, add_generation_prompt, bos_token, eos_token, tools and the extra variables.
  Expected<std::string> render_chat(const ChatRequest& request, const RenderOptions& opts = {}) const;

 private:
  std::shared_ptr<const std::vector<std::unique_ptr<Stmt>>> body_;
};

// Parse + render in one call.
Expected<std::string> render(std::string_view template_source, const nlohmann::ordered_json& context,
                             const RenderOptions& opts = {});
Expected<std::string> render_chat(std::string_view template_source, const ChatRequest& request,
                                  const RenderOptions& opts = {});

// The variables render_chat passes (useful for callers that add their own).
nlohmann::ordered_json chat_context(const ChatRequest& request);

}  // namespace rf::chat
