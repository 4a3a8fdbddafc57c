#include "tokenizer/tokenize_command.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace rf::tokenizer {

int run_tokenize(const TokenizeOptions& opts) {
  std::string text = opts.prompt;
  if (!opts.file.empty()) {
    std::ifstream in(opts.file, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "tokenize: cannot read '%s'\n", opts.file.c_str());
      return 1;
    }
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  auto tok = Tokenizer::open(opts.model);
  if (!tok) {
    std::fprintf(stderr, "tokenize: %s\n", tok.error_message().c_str());
    return 1;
  }
  const std::vector<int32_t> ids = (*tok)->tokenize(text, opts.add_special, opts.parse_special);
  if (opts.json) {
    std::printf("%s\n", nlohmann::json{{"tokens", ids}}.dump().c_str());
  } else {
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i) line.push_back(' ');
      line += std::to_string(ids[i]);
    }
    std::printf("%s\n", line.c_str());
  }
  return 0;
}

void register_tokenize_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Print the token ids of a text");
  cmd->add_option("-m,--model", opts->model, "GGUF model (or vocabulary-only GGUF)")->required();
  auto* prompt = cmd->add_option("-p,--prompt", opts->prompt, "Text to tokenize");
  auto* file = cmd->add_option("-f,--file", opts->file, "File whose bytes to tokenize");
  prompt->excludes(file);
  file->excludes(prompt);
  cmd->add_flag("--add-special", opts->add_special, "Add BOS/EOS as the model's add_bos/add_eos flags say");
  cmd->add_flag("--parse-special", opts->parse_special, "Match the text of control tokens such as <|im_start|>");
  cmd->add_flag("--json", opts->json, "Print {\"tokens\":[...]}");
  cmd->callback([opts, prompt, file, &exit_code] {
    if (prompt->count() == 0 && file->count() == 0) {
      throw CLI::RequiredError("one of -p/--prompt or -f/--file");
    }
    exit_code = run_tokenize(*opts);
  });
}

}  // namespace rf::tokenizer
