// `rocmforge render-template (-m MODEL.gguf | --template FILE.jinja) --messages FILE.json
//      [--add-generation-prompt] [--bos-token S] [--eos-token S] [--tools FILE.json]`:
// prints the rendered prompt exactly (no newline added). The template comes from --template, else from the
// model's `tokenizer.chat_template`. --messages holds a JSON array of {"role","content"} (or an object with
// "messages" and optionally "tools"). Without --bos-token/--eos-token, a model's BOS/EOS token texts are used
// (empty strings with --template alone). Exit status 1 with the error on stderr when the template raises,
// when a file cannot be read, or when the model has no chat template and none is given.
#pragma once

#include <optional>
#include <string>

namespace rf::chat {

struct RenderTemplateOptions {
  std::string model;          // GGUF file (template and default BOS/EOS)
  std::string template_file;  // overrides the model's template
  std::string messages_file;
  std::string tools_file;  // optional JSON array passed as `tools`
  bool add_generation_prompt = false;
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
};

// Runs the command; returns the process exit status (errors go to stderr).
int run_render_template(const RenderTemplateOptions& opts);

}  // namespace rf::chat
