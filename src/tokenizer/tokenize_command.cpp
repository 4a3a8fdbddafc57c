#include "tokenizer/tokenize_command.h"

#include <cstdio>
#include <fstream>
#include <iterator>
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

}  // namespace rf::tokenizer
