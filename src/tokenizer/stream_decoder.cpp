#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace rf::tokenizer {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

// Length of a well-formed UTF-8 sequence starting at s[0] (1..4); 0 if s[0] cannot start one;
// -1 if the bytes so far are a valid but incomplete prefix.
int sequence_status(const uint8_t* s, size_t available) {
  const uint8_t b = s[0];
  if (b < 0x80) return 1;
  int len = 0;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b >= 0xC2 && b <= 0xDF) {
    len = 2;
  } else if (b >= 0xE0 && b <= 0xEF) {
    len = 3;
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    len = 4;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  for (int k = 1; k < len; ++k) {
    if (static_cast<size_t>(k) >= available) return -1;
    const uint8_t lower = k == 1 ? lo : 0x80;
    const uint8_t upper = k == 1 ? hi : 0xBF;
    if (s[k] < lower || s[k] > upper) return 0;
  }
  return len;
}

}  // namespace

StreamDecoder::StreamDecoder(std::shared_ptr<const Tokenizer> tokenizer, bool render_special)
    : tokenizer_(std::move(tokenizer)), render_special_(render_special) {}

std::string StreamDecoder::push(int32_t id) { return push_bytes(tokenizer_->token_to_piece(id, render_special_)); }

std::string StreamDecoder::push_bytes(std::string_view bytes) {
  pending_.append(bytes);
  std::string out;
  const auto* s = reinterpret_cast<const uint8_t*>(pending_.data());
  const size_t n = pending_.size();
  size_t i = 0;
  while (i < n) {
    const int len = sequence_status(s + i, n - i);
    if (len < 0) break;  // wait for the rest of this character
    if (len == 0) {
      out += kReplacement;
      i += 1;
    } else {
      out.append(pending_, i, static_cast<size_t>(len));
      i += static_cast<size_t>(len);
    }
  }
  pending_.erase(0, i);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out = pending_.empty() ? "" : std::string(kReplacement);
  pending_.clear();
  return out;
}

}  // namespace rf::tokenizer
