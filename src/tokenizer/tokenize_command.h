// `rocmforge tokenize -m MODEL.gguf (-p TEXT | -f FILE) [--add-special] [--parse-special] [--json]`:
// prints the token ids space-separated, or {"tokens":[...]} with --json.
#pragma once

#include <string>

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

}  // namespace rf::tokenizer
