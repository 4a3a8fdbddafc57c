// libFuzzer target: a hostile vocabulary. Arbitrary bytes are parsed as a GGUF file and, where that works, turned
// into a tokenizer (Tokenizer::from_gguf: odd token types, scores, merges, special ids, pre-tokenizer names, empty or
// duplicate or invalid-UTF-8 token texts). A vocabulary that is accepted must tokenize and detokenize a few fixed
// texts with every id in range, and its stream decoder must emit valid UTF-8. Seeds: the built-in vocabularies of
// tokenizer_vocabs.h as GGUF files.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace {

using rf::fuzz::check;

constexpr std::string_view kTexts[] = {
    "Hello world, the world and it's 123!",
    " \n\n\t  <s></s><|endoftext|><tag>[CLS] x",
    "caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\xA6\x99 \xC3\x28\xFF \xE2\x96\x81",
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = rf::gguf::File::parse(std::span<const uint8_t>(data, size), "fuzz");
  if (!file.ok()) return 0;
  auto tok = rf::tokenizer::Tokenizer::from_gguf(**file);
  if (!tok.ok()) {
    check(!tok.error_message().empty());
    return 0;
  }
  const auto& t = **tok;
  check(t.n_tokens() > 0);
  for (std::string_view text : kTexts) {
    for (int flags = 0; flags < 4; ++flags) {
      const std::vector<int32_t> ids = t.tokenize(text, flags & 1, flags & 2);
      for (int32_t id : ids) check(t.is_valid(id));
      const std::string detok = t.detokenize(ids, flags & 1, flags & 2);
      rf::tokenizer::StreamDecoder decoder(*tok, flags & 2);
      std::string streamed;
      for (int32_t id : ids) streamed += decoder.push(id);
      streamed += decoder.flush();
      check(rf::fuzz::is_valid_utf8(streamed));
    }
  }
  return 0;
}
