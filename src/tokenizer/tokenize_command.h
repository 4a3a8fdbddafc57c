// `rocmforge tokenize -m MODEL.gguf (-p TEXT | -f FILE) [--add-special] [--parse-special] [--json]`:
// prints the token ids space-separated, or {"tokens":[...]} with --json.
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace rf::tokenizer {

struct TokenizeOptions {
  std::string model;
  std::string prompt;
  std::string file;
  bool add_special = false;    // add BOS/EOS as the model's flags say
  bool parse_special = false;  // text of control tokens becomes those tokens
  bool json = false;
};

// Runs the command; returns the process exit status (errors go to stderr).
int run_tokenize(const TokenizeOptions& opts);
// Adds the `tokenize` subcommand to `app`; when it runs, its exit status is stored in exit_code.
void register_tokenize_command(CLI::App& app, int& exit_code);

}  // namespace rf::tokenizer
