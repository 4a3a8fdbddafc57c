#include <unicode/unorm2.h>

#include <algorithm>
#include <string>

#include "tokenizer/encoders.h"
#include "tokenizer/unicode.h"

namespace rf::tokenizer {
namespace {

// First code point of the canonical decomposition (the base letter of an accented one).
uint32_t nfd_base(uint32_t cp) {
  UErrorCode status = U_ZERO_ERROR;
  static const UNormalizer2* nfd = unorm2_getNFDInstance(&status);
  if (nfd == nullptr || cp > kMaxCodepoint) return cp;
  UChar buffer[32];
  status = U_ZERO_ERROR;
  const int32_t len = unorm2_getDecomposition(nfd, static_cast<UChar32>(cp), buffer, 32, &status);
  if (U_FAILURE(status) || len <= 0) return cp;
  uint32_t first = buffer[0];
  if (first >= 0xD800 && first <= 0xDBFF && len > 1) first = 0x10000 + ((first - 0xD800) << 10) + (buffer[1] - 0xDC00);
  return first;
}

// CJK ideograph blocks, split into single-character words (the reference's ranges, one of which is offset).
bool is_cjk(uint32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

std::vector<std::string> split_words(const Vocab& vocab, std::string_view text) {
  std::vector<std::string> words(1);
  for (uint32_t cp : decode_utf8(text)) {
    if (vocab.strip_accents) cp = nfd_base(cp);
    const uint16_t flags = codepoint_flags(cp);
    if (flags & kWhitespace) {
      if (!words.back().empty()) words.emplace_back();
      continue;
    }
    if (cp == 0 || cp == kReplacementChar || (flags & kControl)) continue;
    if (vocab.strip_accents && (flags & kMark)) continue;
    std::string s;
    append_utf8(s, vocab.lowercase ? to_lower(cp) : cp);
    if ((flags & kPunctuation) || (cp < 0x7F && (flags & kSymbol)) || is_cjk(cp)) {
      if (!words.back().empty()) words.emplace_back();
      words.back() = s;
      words.emplace_back();
    } else {
      words.back() += s;
    }
  }
  if (words.back().empty()) words.pop_back();
  return words;
}

}  // namespace

void encode_wpm(const Vocab& vocab, std::string_view text, std::vector<int32_t>& out) {
  for (const std::string& word : split_words(vocab, text)) {
    if (word.empty()) continue;
    const std::string marked = "\xE2\x96\x81" + word;  // words start with the visible-space marker
    const size_t n = marked.size();
    const size_t before = out.size();
    for (size_t i = 0; i < n; ++i) {
      bool matched = false;
      for (size_t j = std::min(n, i + vocab.max_token_len + 1); j > i; --j) {
        const int32_t id = vocab.find(std::string_view(marked).substr(i, j - i));
        if (id != kNoToken) {
          out.push_back(id);
          matched = true;
          i = j - 1;
          break;
        }
      }
      if (!matched) {
        out.resize(before);
        break;
      }
    }
    if (out.size() == before && vocab.unk != kNoToken) out.push_back(vocab.unk);
  }
}

}  // namespace rf::tokenizer
