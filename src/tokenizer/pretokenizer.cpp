#include "tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 32
#include <pcre2.h>

#include <array>
#include <utility>

#include "tokenizer/pretokenizer_patterns.h"
#include "tokenizer/unicode.h"

namespace rf::tokenizer {

namespace {

enum class StepKind { kGpt2, kLlama3, kRegex };

// Collapsed-text stand-ins for non-ASCII code points of each category (the reference engine's choice of values,
// needed only to be distinct from ASCII and from each other).
constexpr uint32_t kCollapsedOther = 0xD0;
constexpr uint32_t kCollapsedNumber = 0xD1;
constexpr uint32_t kCollapsedLetter = 0xD2;
constexpr uint32_t kCollapsedPunctuation = 0xD3;
constexpr uint32_t kCollapsedMark = 0xD4;
constexpr uint32_t kCollapsedSymbol = 0xD5;
constexpr uint32_t kCollapsedSpace = 0x0B;  // non-ASCII white space is matched as a vertical tab

struct CategoryName {
  std::string_view name;
  uint16_t flag;
};
// \p{..} names the collapsed matcher understands; the letter subcategories all mean "any letter".
constexpr std::array<CategoryName, 10> kCategoryNames = {{
    {"\\p{N}", kNumber},
    {"\\p{L}", kLetter},
    {"\\p{P}", kPunctuation},
    {"\\p{M}", kMark},
    {"\\p{S}", kSymbol},
    {"\\p{Lu}", kLetter},
    {"\\p{Ll}", kLetter},
    {"\\p{Lt}", kLetter},
    {"\\p{Lm}", kLetter},
    {"\\p{Lo}", kLetter},
}};

uint32_t collapsed_code(uint16_t category) {
  switch (category) {
    case kNumber:
      return kCollapsedNumber;
    case kLetter:
      return kCollapsedLetter;
    case kPunctuation:
      return kCollapsedPunctuation;
    case kMark:
      return kCollapsedMark;
    case kSymbol:
      return kCollapsedSymbol;
    default:
      return kCollapsedOther;
  }
}

bool uses_categories(std::string_view pattern) {
  for (const auto& c : kCategoryNames) {
    if (pattern.find(c.name) != std::string_view::npos) return true;
  }
  return false;
}

// The class body standing for one category in a collapsed pattern: its stand-in code plus its ASCII members.
// The reference leaves '~' (Sm) out of \p{S}'s ASCII members; kept for identical splits.
void append_category_class(std::vector<uint32_t>& out, uint16_t category) {
  out.push_back(collapsed_code(category));
  for (uint32_t c = 0; c < 128; ++c) {
    if ((codepoint_flags(c) & kCategoryMask) != category) continue;
    if (category == kSymbol && c == '~') continue;
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!alnum) out.push_back('\\');
    out.push_back(c);
  }
}

Expected<std::vector<uint32_t>> collapse_pattern(const std::string& pattern) {
  std::vector<uint32_t> out;
  bool inside = false;  // inside [...] (the patterns never nest classes)
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char ch = pattern[i];
    if (static_cast<unsigned char>(ch) >= 0x80) {
      return Status::error("tokenizer: pre-tokenizer pattern '" + pattern +
                           "' mixes \\p{..} classes with non-ASCII characters, which is not supported");
    }
    if (ch == '[' && (i == 0 || pattern[i - 1] != '\\')) {
      inside = true;
      out.push_back('[');
      continue;
    }
    if (inside && ch == ']' && pattern[i - 1] != '\\') {
      inside = false;
      out.push_back(']');
      continue;
    }
    if (ch == '\\' && i + 3 < pattern.size() && pattern[i + 1] == 'p' && pattern[i + 2] == '{') {
      const size_t close = pattern.find('}', i + 3);
      if (close != std::string::npos) {
        const std::string_view name(pattern.data() + i, close - i + 1);
        const CategoryName* found = nullptr;
        for (const auto& c : kCategoryNames) {
          if (c.name == name) found = &c;
        }
        if (found != nullptr) {
          if (!inside) out.push_back('[');
          append_category_class(out, found->flag);
          if (!inside) out.push_back(']');
          i = close;
          continue;
        }
      }
    }
    out.push_back(static_cast<unsigned char>(ch));
  }
  return out;
}

struct CodeDeleter {
  void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};

// Appends `end - prev` to `out` when positive.
inline void emit(std::vector<size_t>& out, size_t& prev, size_t end) {
  if (end > prev) out.push_back(end - prev);
  prev = end;
}

bool is_cr_or_lf(uint32_t c) { return c == '\r' || c == '\n'; }

// Contractions 's 't 'm 'd 're 've 'll at `pos`; returns their length or 0.
size_t contraction_length(const uint32_t* cps, size_t pos, size_t end, bool fold_case) {
  if (cps[pos] != '\'' || pos + 1 >= end) return 0;
  auto at = [&](size_t p) { return fold_case ? to_lower(cps[p]) : cps[p]; };
  const uint32_t c1 = at(pos + 1);
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
  if (pos + 2 >= end) return 0;
  const uint32_t c2 = at(pos + 2);
  if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
  return 0;
}

// Scanner equivalent to GPT-2's pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// over cps[begin, end); flags[] holds codepoint_flags of each code point.
void scan_gpt2(const uint32_t* cps, const uint16_t* flags, size_t begin, size_t end, std::vector<size_t>& out) {
  auto flag = [&](size_t p) -> uint16_t { return p < end ? flags[p] : 0; };
  size_t prev = begin;
  size_t pos = begin;
  while (pos < end) {
    if (size_t n = contraction_length(cps, pos, end, false)) {
      pos += n;
      emit(out, prev, pos);
      continue;
    }
    size_t p = pos + (cps[pos] == ' ' ? 1 : 0);
    const uint16_t f = flag(p);
    if (f & kLetter) {
      while (flag(p) & kLetter) ++p;
    } else if (f & kNumber) {
      while (flag(p) & kNumber) ++p;
    } else if (f != 0 && !(f & (kWhitespace | kLetter | kNumber))) {
      while (flag(p) != 0 && !(flag(p) & (kWhitespace | kLetter | kNumber))) ++p;
    } else {
      size_t n_ws = 0;
      while (flag(pos + n_ws) & kWhitespace) ++n_ws;
      if (n_ws > 1 && pos + n_ws < end) {
        p = pos + n_ws - 1;  // \s+(?!\S): leave the last space to the next word
      } else {
        p = pos + (n_ws > 0 ? n_ws : 1);
      }
    }
    pos = p;
    emit(out, prev, pos);
  }
}

// Scanner equivalent to LLaMA 3's pattern
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
void scan_llama3(const uint32_t* cps, const uint16_t* flags, size_t begin, size_t end, std::vector<size_t>& out) {
  auto flag = [&](size_t p) -> uint16_t { return p < end ? flags[p] : 0; };
  size_t prev = begin;
  size_t pos = begin;
  while (pos < end) {
    const uint32_t c = cps[pos];
    const uint16_t f = flags[pos];
    if (size_t n = contraction_length(cps, pos, end, true)) {
      pos += n;
      emit(out, prev, pos);
      continue;
    }
    if (!is_cr_or_lf(c) && !(f & kNumber) && ((f & kLetter) || (flag(pos + 1) & kLetter))) {
      ++pos;
      while (flag(pos) & kLetter) ++pos;
      emit(out, prev, pos);
      continue;
    }
    if (f & kNumber) {
      size_t group_start = pos;
      while (flag(pos) & kNumber) {
        if (++pos - group_start >= 3) {
          emit(out, prev, pos);
          group_start = pos;
        }
      }
      emit(out, prev, pos);
      continue;
    }
    const uint16_t f2 = c == ' ' ? flag(pos + 1) : f;
    if (!(f2 & (kWhitespace | kLetter | kNumber)) && f != 0) {
      pos += (c == ' ' ? 1 : 0);
      while (flag(pos) != 0 && !(flag(pos) & (kWhitespace | kLetter | kNumber))) ++pos;
      while (pos < end && is_cr_or_lf(cps[pos])) ++pos;
      emit(out, prev, pos);
      continue;
    }
    size_t n_ws = 0;
    size_t newline_end = 0;
    bool has_newline = false;
    while (flag(pos + n_ws) & kWhitespace) {
      if (is_cr_or_lf(cps[pos + n_ws])) {
        has_newline = true;
        newline_end = pos + n_ws + 1;
      }
      ++n_ws;
    }
    if (has_newline) {
      pos = newline_end;  // \s*[\r\n]+
    } else if (n_ws > 1 && pos + n_ws < end) {
      pos += n_ws - 1;  // \s+(?!\S)
    } else {
      pos += n_ws > 0 ? n_ws : 1;
    }
    emit(out, prev, pos);
  }
}

}  // namespace

struct PreTokenizer::Step {
  StepKind kind = StepKind::kRegex;
  bool collapsed = false;
  std::unique_ptr<pcre2_code, CodeDeleter> code;
};

Expected<PreTokenizer> PreTokenizer::create(const std::vector<std::string>& patterns) {
  PreTokenizer pre;
  for (const std::string& pattern : patterns) {
    auto step = std::make_shared<Step>();
    if (pattern == kGpt2Pattern) {
      step->kind = StepKind::kGpt2;
    } else if (pattern == kLlama3Pattern) {
      step->kind = StepKind::kLlama3;
    } else {
      std::vector<uint32_t> units;
      if (uses_categories(pattern)) {
        auto collapsed = collapse_pattern(pattern);
        if (!collapsed) return collapsed.status();
        units = std::move(*collapsed);
        step->collapsed = true;
      } else {
        units = decode_utf8(pattern);
      }
      int error = 0;
      PCRE2_SIZE error_offset = 0;
      pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(units.data()), units.size(), PCRE2_DOLLAR_ENDONLY,
                                       &error, &error_offset, nullptr);
      if (code == nullptr) {
        std::array<PCRE2_UCHAR, 256> message{};
        pcre2_get_error_message(error, message.data(), message.size());
        std::string text;
        for (PCRE2_UCHAR u : message) {
          if (u == 0) break;
          append_utf8(text, u);
        }
        return Status::error("tokenizer: pre-tokenizer pattern '" + pattern + "' does not compile at offset " +
                             std::to_string(error_offset) + ": " + text);
      }
      pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter when JIT is unavailable
      step->code.reset(code);
    }
    pre.steps_.push_back(std::move(step));
  }
  return pre;
}

std::vector<size_t> PreTokenizer::split_lengths(const std::vector<uint32_t>& cps) const {
  std::vector<size_t> lengths;
  if (cps.empty()) return lengths;
  lengths.push_back(cps.size());

  std::vector<uint16_t> flags(cps.size());
  for (size_t i = 0; i < cps.size(); ++i) flags[i] = codepoint_flags(cps[i]);

  std::vector<uint32_t> collapsed;  // built on first use
  std::vector<uint32_t> plain;
  pcre2_match_data* match = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;

  for (const auto& step : steps_) {
    std::vector<size_t> next;
    next.reserve(lengths.size() * 2);
    const uint32_t* subject = nullptr;
    if (step->kind == StepKind::kRegex) {
      std::vector<uint32_t>& text = step->collapsed ? collapsed : plain;
      if (text.empty()) {
        text.resize(cps.size());
        for (size_t i = 0; i < cps.size(); ++i) {
          const uint32_t c = cps[i];
          if (c < 128) {
            text[i] = c;
          } else if (flags[i] & kWhitespace) {
            text[i] = kCollapsedSpace;
          } else {
            text[i] = step->collapsed ? collapsed_code(flags[i] & kCategoryMask) : c;
          }
        }
      }
      subject = text.data();
      if (match == nullptr) {
        match = pcre2_match_data_create(4, nullptr);
        context = pcre2_match_context_create(nullptr);
        jit_stack = pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, nullptr);
        pcre2_jit_stack_assign(context, nullptr, jit_stack);
      }
    }
    size_t start = 0;
    for (size_t len : lengths) {
      const size_t end = start + len;
      switch (step->kind) {
        case StepKind::kGpt2:
          scan_gpt2(cps.data(), flags.data(), start, end, next);
          break;
        case StepKind::kLlama3:
          scan_llama3(cps.data(), flags.data(), start, end, next);
          break;
        case StepKind::kRegex: {
          // Each piece is its own subject: ^, $ and lookarounds stop at the piece's edges.
          const PCRE2_SPTR piece = reinterpret_cast<PCRE2_SPTR>(subject + start);
          size_t prev = 0;
          size_t from = 0;
          while (from <= len) {
            const int rc = pcre2_match(step->code.get(), piece, len, from, 0, match, context);
            if (rc < 0) break;  // no match (or a resource limit: the rest stays one piece)
            const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(match);
            if (ov[0] > prev) next.push_back(ov[0] - prev);
            if (ov[1] > ov[0]) next.push_back(ov[1] - ov[0]);
            prev = ov[1];
            from = ov[1] > ov[0] ? ov[1] : ov[1] + 1;
          }
          if (len > prev) next.push_back(len - prev);
          break;
        }
      }
      start = end;
    }
    lengths.swap(next);
  }
  if (match != nullptr) {
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(match);
  }
  return lengths;
}

std::vector<std::string> PreTokenizer::split(std::string_view text) const {
  const std::vector<uint32_t> cps = decode_utf8(text);
  std::vector<std::string> words;
  size_t start = 0;
  for (size_t len : split_lengths(cps)) {
    words.push_back(encode_utf8(cps.data() + start, len));
    start += len;
  }
  return words;
}

}  // namespace rf::tokenizer
