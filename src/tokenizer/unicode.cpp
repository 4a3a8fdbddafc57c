#include "tokenizer/unicode.h"

#include <unicode/uchar.h>

#include <array>

namespace rf::tokenizer {
namespace {

uint16_t category_flag(int8_t type) {
  switch (type) {
    case U_UNASSIGNED:
      return kUndefined;
    case U_UPPERCASE_LETTER:
    case U_LOWERCASE_LETTER:
    case U_TITLECASE_LETTER:
    case U_MODIFIER_LETTER:
    case U_OTHER_LETTER:
      return kLetter;
    case U_NON_SPACING_MARK:
    case U_ENCLOSING_MARK:
    case U_COMBINING_SPACING_MARK:
      return kMark;
    case U_DECIMAL_DIGIT_NUMBER:
    case U_LETTER_NUMBER:
    case U_OTHER_NUMBER:
      return kNumber;
    case U_SPACE_SEPARATOR:
    case U_LINE_SEPARATOR:
    case U_PARAGRAPH_SEPARATOR:
      return kSeparator;
    case U_DASH_PUNCTUATION:
    case U_START_PUNCTUATION:
    case U_END_PUNCTUATION:
    case U_CONNECTOR_PUNCTUATION:
    case U_OTHER_PUNCTUATION:
    case U_INITIAL_PUNCTUATION:
    case U_FINAL_PUNCTUATION:
      return kPunctuation;
    case U_MATH_SYMBOL:
    case U_CURRENCY_SYMBOL:
    case U_MODIFIER_SYMBOL:
    case U_OTHER_SYMBOL:
      return kSymbol;
    default:  // Cc, Cf, Co, Cs
      return kControl;
  }
}

// Flags for every code point, computed once from ICU (about 2 MiB).
const std::vector<uint16_t>& flag_table() {
  static const std::vector<uint16_t> table = [] {
    std::vector<uint16_t> t(kMaxCodepoint + 1);
    for (uint32_t cp = 0; cp <= kMaxCodepoint; ++cp) {
      uint16_t f = category_flag(u_charType(static_cast<UChar32>(cp)));
      if (u_hasBinaryProperty(static_cast<UChar32>(cp), UCHAR_WHITE_SPACE)) f |= kWhitespace;
      t[cp] = f;
    }
    return t;
  }();
  return table;
}

struct ByteMaps {
  std::array<std::string, 256> to_char;
  std::array<uint32_t, 256> to_cp{};
};

// GPT-2's byte map: printable Latin-1 bytes map to themselves, the other 68 bytes to U+0100.. in byte order.
const ByteMaps& byte_maps() {
  static const ByteMaps maps = [] {
    ByteMaps m;
    auto printable = [](int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE); };
    uint32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      m.to_cp[b] = printable(b) ? static_cast<uint32_t>(b) : next++;
      append_utf8(m.to_char[b], m.to_cp[b]);
    }
    return m;
  }();
  return maps;
}

}  // namespace

uint16_t codepoint_flags(uint32_t cp) { return cp <= kMaxCodepoint ? flag_table()[cp] : 0; }

uint32_t to_lower(uint32_t cp) {
  if (cp > kMaxCodepoint) return cp;
  return static_cast<uint32_t>(u_tolower(static_cast<UChar32>(cp)));
}

size_t utf8_sequence_length(uint8_t lead) {
  static constexpr size_t kLengths[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLengths[lead >> 4];
}

std::vector<uint32_t> decode_utf8(std::string_view text) {
  std::vector<uint32_t> out;
  out.reserve(text.size());
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  auto cont = [&](size_t k) { return i + k < n && (s[i + k] & 0xC0) == 0x80; };
  while (i < n) {
    const uint8_t b = s[i];
    if (b < 0x80) {
      out.push_back(b);
      i += 1;
    } else if ((b & 0xE0) == 0xC0 && cont(1)) {
      out.push_back((uint32_t(b & 0x1F) << 6) | (s[i + 1] & 0x3F));
      i += 2;
    } else if ((b & 0xF0) == 0xE0 && cont(1) && cont(2)) {
      out.push_back((uint32_t(b & 0x0F) << 12) | (uint32_t(s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F));
      i += 3;
    } else if ((b & 0xF8) == 0xF0 && cont(1) && cont(2) && cont(3)) {
      const uint32_t cp = (uint32_t(b & 0x07) << 18) | (uint32_t(s[i + 1] & 0x3F) << 12) |
                          (uint32_t(s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
      if (cp > kMaxCodepoint) {
        out.push_back(kReplacementChar);
        i += 1;
      } else {
        out.push_back(cp);
        i += 4;
      }
    } else {
      out.push_back(kReplacementChar);
      i += 1;
    }
  }
  return out;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string encode_utf8(const uint32_t* cps, size_t n) {
  std::string out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) append_utf8(out, cps[i]);
  return out;
}

const std::string& byte_to_bpe_char(uint8_t byte) { return byte_maps().to_char[byte]; }

int bpe_char_to_byte(uint32_t cp) {
  if (cp < 0x100) {
    const ByteMaps& m = byte_maps();
    return m.to_cp[cp] == cp ? static_cast<int>(cp) : -1;
  }
  static const std::array<int, 68> high = [] {
    std::array<int, 68> h{};
    const ByteMaps& m = byte_maps();
    for (int b = 0; b < 256; ++b) {
      if (m.to_cp[b] >= 0x100) h[m.to_cp[b] - 0x100] = b;
    }
    return h;
  }();
  return cp - 0x100 < high.size() ? high[cp - 0x100] : -1;
}

std::string bpe_encode_bytes(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += byte_to_bpe_char(static_cast<uint8_t>(c));
  return out;
}

}  // namespace rf::tokenizer
