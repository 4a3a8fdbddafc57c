#include "chat/render_template_command.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

#include "chat/chat_template.h"
#include "gguf/gguf.h"

namespace rf::chat {

namespace {

Expected<std::string> read_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::error(std::string("render-template: cannot open ") + what + " '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::error(std::string("render-template: cannot read ") + what + " '" + path + "'");
  return ss.str();
}

Expected<nlohmann::ordered_json> read_json(const std::string& path, const char* what) {
  auto text = read_file(path, what);
  if (!text) return text.status();
  auto j = nlohmann::ordered_json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return Status::error(std::string("render-template: ") + what + " '" + path + "' is not valid JSON");
  return j;
}

// The text of token `id_key` (e.g. tokenizer.ggml.bos_token_id) in the model's vocabulary, if present.
std::optional<std::string> token_text(const gguf::File& f, const char* id_key) {
  if (!f.has(id_key)) return std::nullopt;
  auto id = f.get<uint32_t>(id_key);
  auto tokens = f.get<std::vector<std::string>>("tokenizer.ggml.tokens");
  if (!id || !tokens || *id >= tokens->size()) return std::nullopt;
  return (*tokens)[*id];
}

}  // namespace

int run_render_template(const RenderTemplateOptions& opts) {
  auto fail = [](const std::string& msg) {
    std::fprintf(stderr, "%s\n", msg.c_str());
    return 1;
  };
  ChatRequest req;
  std::string source;
  if (!opts.template_file.empty()) {
    auto text = read_file(opts.template_file, "template");
    if (!text) return fail(text.error_message());
    source = std::move(*text);
  }
  if (!opts.model.empty()) {
    auto file = gguf::File::open(opts.model);
    if (!file) return fail(file.error_message());
    const gguf::File& f = **file;
    if (source.empty() && opts.template_file.empty()) {
      if (!f.has("tokenizer.chat_template")) {
        return fail("render-template: model '" + opts.model +
                    "' has no chat template (tokenizer.chat_template); pass one with --template FILE.jinja");
      }
      auto tmpl = f.get<std::string>("tokenizer.chat_template");
      if (!tmpl) return fail(tmpl.error_message());
      source = std::move(*tmpl);
    }
    req.bos_token = token_text(f, "tokenizer.ggml.bos_token_id").value_or("");
    req.eos_token = token_text(f, "tokenizer.ggml.eos_token_id").value_or("");
  } else if (opts.template_file.empty()) {
    return fail("render-template: give a model (-m MODEL.gguf) or a template (--template FILE.jinja)");
  }
  if (opts.bos_token) req.bos_token = *opts.bos_token;
  if (opts.eos_token) req.eos_token = *opts.eos_token;

  auto messages = read_json(opts.messages_file, "messages file");
  if (!messages) return fail(messages.error_message());
  if (messages->is_object() && messages->contains("messages")) {
    if (messages->contains("tools")) req.tools = (*messages)["tools"];
    req.messages = (*messages)["messages"];
  } else {
    req.messages = std::move(*messages);
  }
  if (!req.messages.is_array()) return fail("render-template: --messages must hold a JSON array of messages");
  if (!opts.tools_file.empty()) {
    auto tools = read_json(opts.tools_file, "tools file");
    if (!tools) return fail(tools.error_message());
    req.tools = std::move(*tools);
  }
  req.add_generation_prompt = opts.add_generation_prompt;

  auto prompt = render_chat(source, req);
  if (!prompt) return fail(prompt.error_message());
  std::fwrite(prompt->data(), 1, prompt->size(), stdout);
  std::fflush(stdout);
  return 0;
}

}  // namespace rf::chat
