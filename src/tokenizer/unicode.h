// Unicode helpers for the tokenizers: code point categories (from ICU), lenient UTF-8 decoding that matches the
// reference tokenizer's treatment of invalid input, and the byte <-> code point map of byte-level BPE.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rf::tokenizer {

// One bit per Unicode general category group, plus White_Space. Unassigned code points are kUndefined;
// surrogates, private use, format and control characters are kControl.
enum CodepointFlag : uint16_t {
  kUndefined = 0x0001,
  kNumber = 0x0002,       // \p{N}
  kLetter = 0x0004,       // \p{L}
  kSeparator = 0x0008,    // \p{Z}
  kMark = 0x0010,         // \p{M}
  kPunctuation = 0x0020,  // \p{P}
  kSymbol = 0x0040,       // \p{S}
  kControl = 0x0080,      // \p{C} except Cn
  kCategoryMask = 0x00FF,
  kWhitespace = 0x0100,  // Unicode White_Space property
};

inline constexpr uint32_t kMaxCodepoint = 0x10FFFF;
inline constexpr uint32_t kReplacementChar = 0xFFFD;

// Flags of a code point; 0 for values above kMaxCodepoint.
uint16_t codepoint_flags(uint32_t cp);
inline bool is_whitespace(uint32_t cp) { return (codepoint_flags(cp) & kWhitespace) != 0; }

// Simple (one-to-one) lowercase mapping.
uint32_t to_lower(uint32_t cp);

// Length of a UTF-8 sequence from its lead byte, looking at the high 4 bits only (continuation bytes count as 1).
size_t utf8_sequence_length(uint8_t lead);

// Decodes UTF-8; each byte that does not start a well-formed sequence becomes U+FFFD (one per byte).
std::vector<uint32_t> decode_utf8(std::string_view text);
void append_utf8(std::string& out, uint32_t cp);
std::string encode_utf8(const uint32_t* cps, size_t n);

// Byte-level BPE (GPT-2): every byte has a printable code point; text is stored in vocabularies in that form.
const std::string& byte_to_bpe_char(uint8_t byte);  // UTF-8 of the byte's code point
int bpe_char_to_byte(uint32_t cp);                  // -1 when cp stands for no byte
std::string bpe_encode_bytes(std::string_view bytes);

}  // namespace rf::tokenizer
