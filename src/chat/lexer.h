// Template lexer: splits a Jinja2 template into text and tag tokens, applying Jinja2's whitespace rules as
// Hugging Face configures them (trim_blocks, lstrip_blocks, `-`/`+` markers, newline normalisation and the
// removal of one trailing newline), and tokenizes the expressions inside tags.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rf::chat {

enum class TokenType { kData, kVarBegin, kVarEnd, kBlockBegin, kBlockEnd, kName, kString, kInt, kFloat, kOp, kEof };

struct Token {
  TokenType type = TokenType::kEof;
  std::string text;  // data text, name, decoded string literal, operator, or number spelling
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1;
};

struct LexOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
  bool keep_trailing_newline = false;
};

// Tokenizes `source`. Throws RenderError (with a line) on malformed input.
std::vector<Token> lex(std::string_view source, const LexOptions& opts);

}  // namespace rf::chat
