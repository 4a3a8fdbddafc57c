#include "chat/lexer.h"

#include <cerrno>
#include <cstdlib>
#include <utility>

#include "chat/text_util.h"
#include "chat/value.h"

namespace rf::chat {

namespace {

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Newlines normalised to "\n"; one trailing newline dropped unless kept (Jinja2's defaults).
std::string normalize(std::string_view src, bool keep_trailing_newline) {
  std::string out;
  out.reserve(src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    if (src[i] == '\r') {
      out += '\n';
      if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
    } else {
      out += src[i];
    }
  }
  if (!keep_trailing_newline && !out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

class Lexer {
 public:
  Lexer(std::string src, const LexOptions& opts) : src_(std::move(src)), opts_(opts) {}

  std::vector<Token> run() {
    while (pos_ < src_.size()) {
      const size_t open = find_open(pos_);
      if (open == std::string::npos) {
        emit_data(src_.substr(pos_), pos_, src_.size());
        break;
      }
      const char kind = src_[open + 1];
      size_t after = open + 2;
      char sign = 0;
      if (after < src_.size() && (src_[after] == '-' || src_[after] == '+')) sign = src_[after++];
      size_t raw_body = 0;
      const bool raw = kind == '%' && match_raw_begin(after, &raw_body);
      emit_data(strip_before(src_.substr(pos_, open - pos_), sign, kind == '{'), pos_, open);
      pos_ = after;
      if (raw) {
        lex_raw(raw_body);
      } else if (kind == '#') {
        lex_comment();
      } else {
        lex_tag(kind == '{');
      }
    }
    push(TokenType::kEof, "");
    return std::move(out_);
  }

 private:
  [[noreturn]] void error(const std::string& msg) const { throw RenderError{msg, line_}; }

  size_t find_open(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    }
    return std::string::npos;
  }

  void advance_to(size_t p) {
    for (size_t i = pos_; i < p && i < src_.size(); ++i) {
      if (src_[i] == '\n') ++line_;
    }
    pos_ = p;
  }

  void push(TokenType type, std::string text) {
    Token t;
    t.type = type;
    t.text = std::move(text);
    t.line = line_;
    out_.push_back(std::move(t));
  }

  // Emits text that spans [begin, end) of the source (possibly shortened by stripping) and advances.
  void emit_data(std::string text, size_t begin, size_t end) {
    pos_ = begin;
    if (!text.empty()) push(TokenType::kData, std::move(text));
    advance_to(end);
  }

  // The whitespace rules for the text before a tag opener with `sign` ('-', '+' or 0).
  std::string strip_before(std::string text, char sign, bool variable) const {
    if (sign == '-') return text::strip(text, false, true);
    if (sign == '+' || !opts_.lstrip_blocks || variable) return text;
    const size_t nl = text.rfind('\n');
    const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
    if (l_pos == 0 && !line_starting_) return text;
    for (size_t i = l_pos; i < text.size(); ++i) {
      if (text[i] != ' ' && text[i] != '\t') return text;
    }
    text.resize(l_pos);
    return text;
  }

  // The end of a block tag at p: "+%}", "-%}" + whitespace, or "%}" + one newline (trim_blocks). Returns the
  // position after it, or npos.
  size_t match_block_end(size_t p) const {
    if (src_.compare(p, 3, "+%}") == 0) return p + 3;
    if (src_.compare(p, 3, "-%}") == 0) {
      p += 3;
      while (p < src_.size() && text_space_at(p)) p += char_len(p);
      return p;
    }
    if (src_.compare(p, 2, "%}") == 0) {
      p += 2;
      if (opts_.trim_blocks && p < src_.size() && src_[p] == '\n') ++p;
      return p;
    }
    return std::string::npos;
  }

  bool text_space_at(size_t p) const {
    size_t len = 0;
    return text::is_space(text::decode_at(src_, p, &len));
  }
  size_t char_len(size_t p) const {
    size_t len = 0;
    text::decode_at(src_, p, &len);
    return len;
  }

  // `{% raw %}` starting at p (just after "{%" and its sign): sets *body to where the raw text begins.
  bool match_raw_begin(size_t p, size_t* body) const {
    while (p < src_.size() && is_ws(src_[p])) ++p;
    if (src_.compare(p, 3, "raw") != 0) return false;
    p += 3;
    while (p < src_.size() && is_ws(src_[p])) ++p;
    if (src_.compare(p, 3, "-%}") == 0) {
      p += 3;
      while (p < src_.size() && text_space_at(p)) p += char_len(p);
    } else if (src_.compare(p, 2, "%}") == 0) {
      p += 2;
    } else {
      return false;
    }
    *body = p;
    return true;
  }

  void lex_raw(size_t body) {
    advance_to(body);
    line_starting_ = body > 0 && src_[body - 1] == '\n';
    for (size_t i = src_.find("{%", body); i != std::string::npos; i = src_.find("{%", i + 1)) {
      size_t p = i + 2;
      char sign = 0;
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) sign = src_[p++];
      while (p < src_.size() && is_ws(src_[p])) ++p;
      if (src_.compare(p, 6, "endraw") != 0) continue;
      p += 6;
      while (p < src_.size() && is_ws(src_[p])) ++p;
      const size_t end = match_block_end(p);
      if (end == std::string::npos) continue;
      emit_data(strip_before(src_.substr(body, i - body), sign, false), body, end);
      line_starting_ = src_[end - 1] == '\n';
      return;
    }
    error("missing end of raw directive");
  }

  void lex_comment() {
    const size_t hit = src_.find("#}", pos_);
    if (hit == std::string::npos) error("missing end of comment tag");
    size_t end = hit + 2;
    if (hit > pos_ && src_[hit - 1] == '-') {
      while (end < src_.size() && text_space_at(end)) end += char_len(end);
    } else if (!(hit > pos_ && src_[hit - 1] == '+') && opts_.trim_blocks && end < src_.size() && src_[end] == '\n') {
      ++end;
    }
    advance_to(end);
    line_starting_ = src_[end - 1] == '\n';
  }

  void lex_tag(bool variable) {
    push(variable ? TokenType::kVarBegin : TokenType::kBlockBegin, "");
    std::vector<char> brackets;
    while (true) {
      while (pos_ < src_.size() && is_ws(src_[pos_])) advance_to(pos_ + 1);
      if (pos_ >= src_.size())
        error(variable ? "unexpected end of template, expected '}}'" : "unexpected end of template, expected '%}'");
      if (brackets.empty()) {
        size_t end = std::string::npos;
        if (variable) {
          if (src_.compare(pos_, 3, "-}}") == 0) {
            end = pos_ + 3;
            while (end < src_.size() && text_space_at(end)) end += char_len(end);
          } else if (src_.compare(pos_, 2, "}}") == 0) {
            end = pos_ + 2;
          }
        } else {
          end = match_block_end(pos_);
        }
        if (end != std::string::npos) {
          push(variable ? TokenType::kVarEnd : TokenType::kBlockEnd, "");
          advance_to(end);
          line_starting_ = src_[end - 1] == '\n';
          return;
        }
      }
      lex_expr_token(brackets);
    }
  }

  void lex_expr_token(std::vector<char>& brackets) {
    const char c = src_[pos_];
    if (is_name_start(c)) {
      size_t e = pos_;
      while (e < src_.size() && is_name_char(src_[e])) ++e;
      push(TokenType::kName, src_.substr(pos_, e - pos_));
      pos_ = e;
      return;
    }
    if (is_digit(c)) {
      lex_number();
      return;
    }
    if (c == '\'' || c == '"') {
      lex_string(c);
      return;
    }
    static const char* const kTwo[] = {"//", "**", "==", "!=", "<=", ">="};
    for (const char* op : kTwo) {
      if (src_.compare(pos_, 2, op) == 0) {
        push(TokenType::kOp, op);
        pos_ += 2;
        return;
      }
    }
    static const std::string kOne = "+-/*%~[](){}<>=.:|,;";
    if (kOne.find(c) == std::string::npos) error(std::string("unexpected char '") + c + "'");
    if (c == '(' || c == '[' || c == '{') brackets.push_back(c == '(' ? ')' : (c == '[' ? ']' : '}'));
    if (c == ')' || c == ']' || c == '}') {
      if (brackets.empty() || brackets.back() != c) error(std::string("unexpected '") + c + "'");
      brackets.pop_back();
    }
    push(TokenType::kOp, std::string(1, c));
    ++pos_;
  }

  void lex_number() {
    size_t e = pos_;
    auto digits = [&](size_t& p) {
      while (p < src_.size() && (is_digit(src_[p]) || (src_[p] == '_' && p + 1 < src_.size() && is_digit(src_[p + 1]))))
        ++p;
    };
    digits(e);
    bool is_float = false;
    if (e + 1 < src_.size() && src_[e] == '.' && is_digit(src_[e + 1])) {
      is_float = true;
      ++e;
      digits(e);
    }
    if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
      size_t p = e + 1;
      if (p < src_.size() && (src_[p] == '+' || src_[p] == '-')) ++p;
      if (p < src_.size() && is_digit(src_[p])) {
        is_float = true;
        e = p;
        digits(e);
      }
    }
    std::string spelled;
    for (size_t i = pos_; i < e; ++i) {
      if (src_[i] != '_') spelled += src_[i];
    }
    Token t;
    t.line = line_;
    t.text = spelled;
    if (is_float) {
      t.type = TokenType::kFloat;
      t.float_value = std::strtod(spelled.c_str(), nullptr);
    } else {
      t.type = TokenType::kInt;
      errno = 0;
      t.int_value = std::strtoll(spelled.c_str(), nullptr, 10);
      if (errno == ERANGE) error("integer literal out of range: " + spelled);
    }
    out_.push_back(std::move(t));
    pos_ = e;
  }

  void lex_string(char quote) {
    const int start_line = line_;
    std::string value;
    size_t p = pos_ + 1;
    while (true) {
      if (p >= src_.size()) error("unterminated string literal");
      const char c = src_[p];
      if (c == quote) break;
      if (c != '\\') {
        value += c;
        ++p;
        continue;
      }
      if (p + 1 >= src_.size()) error("unterminated string literal");
      const char e = src_[p + 1];
      p += 2;
      switch (e) {
        case '\n':
          break;
        case '\\':
          value += '\\';
          break;
        case '\'':
          value += '\'';
          break;
        case '"':
          value += '"';
          break;
        case 'a':
          value += '\a';
          break;
        case 'b':
          value += '\b';
          break;
        case 'f':
          value += '\f';
          break;
        case 'n':
          value += '\n';
          break;
        case 'r':
          value += '\r';
          break;
        case 't':
          value += '\t';
          break;
        case 'v':
          value += '\v';
          break;
        case 'x':
        case 'u':
        case 'U': {
          const int n = e == 'x' ? 2 : (e == 'u' ? 4 : 8);
          char32_t cp = 0;
          for (int i = 0; i < n; ++i, ++p) {
            const int h = p < src_.size() ? hex_value(src_[p]) : -1;
            if (h < 0) error(std::string("truncated \\") + e + " escape in string literal");
            cp = cp * 16 + static_cast<char32_t>(h);
          }
          if (cp > 0x10FFFF) error("illegal Unicode character in string literal");
          text::append_utf8(value, cp);
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            char32_t cp = static_cast<char32_t>(e - '0');
            for (int i = 0; i < 2 && p < src_.size() && src_[p] >= '0' && src_[p] <= '7'; ++i, ++p) {
              cp = cp * 8 + static_cast<char32_t>(src_[p] - '0');
            }
            text::append_utf8(value, cp);
          } else {
            value += '\\';  // unknown escapes keep their backslash, as in Python
            value += e;
          }
      }
    }
    Token t;
    t.type = TokenType::kString;
    t.text = std::move(value);
    t.line = start_line;
    out_.push_back(std::move(t));
    advance_to(p + 1);
  }

  std::string src_;
  LexOptions opts_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;
  std::vector<Token> out_;
};

}  // namespace

std::vector<Token> lex(std::string_view source, const LexOptions& opts) {
  return Lexer(normalize(source, opts.keep_trailing_newline), opts).run();
}

}  // namespace rf::chat
