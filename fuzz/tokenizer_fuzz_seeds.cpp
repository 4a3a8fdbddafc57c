// Writes the seed corpus of tokenizer_fuzz into a folder: a mode byte (flags and vocabulary, see tokenizer_fuzz.cpp)
// followed by text: a few built-in strings (white space runs, punctuation, contractions, multi-byte and invalid
// UTF-8, special-token texts) and, when ../shared is present, llama.cpp's tokenizer test strings.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz_support.h"

namespace {

bool save(const std::string& dir, size_t index, uint8_t mode, const std::string& text) {
  const std::string path = dir + "/seed_" + std::to_string(index);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  bool ok = std::fputc(mode, f) != EOF && std::fwrite(text.data(), 1, text.size(), f) == text.size();
  return std::fclose(f) == 0 && ok;
}

// The cases of an .inp file: each followed by "\n__ggml_vocab_test__\n".
std::vector<std::string> read_cases(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> cases;
  for (size_t pos = 0; pos < all.size();) {
    const size_t hit = all.find(sep, pos);
    if (hit == std::string::npos) break;
    cases.push_back(all.substr(pos, hit - pos));
    pos = hit + sep.size();
  }
  return cases;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  std::vector<std::string> texts = {
      "",
      "Hello world, the world and the in 123 4567!",
      "  leading and trailing  \n\n\t\r\n   ",
      "it's you're we've I'm he'll she'd THE'S",
      "caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\xA6\x99 \xD0\xBD\xD0\xB5\xD1\x89\xD0\xBE",
      "\xC3\x28 \xE2\x82 \xF0\x9F\xA6 \xED\xA0\x80 \xC0\x80 \xFF\xFE lone bytes",
      "<s>x</s><tag> <|turn|><|endoftext|><|im_start|>user\nhi<|im_end|><sep>[CLS] a [SEP][MASK]",
      "\xE2\x96\x81 visible\xE2\x96\x81space zz <unused0> <0x41>",
      std::string("nul\0byte", 8),
      "a ? b ! c . d , e ' f 's 'm 're 've",
  };
  size_t n_builtin = texts.size();
  if (auto shared = rf::fuzz::shared_dir()) {
    for (const char* name : {"ggml-vocab-gpt-2.gguf.inp", "ggml-vocab-llama-spm.gguf.inp"}) {
      for (auto& c : read_cases((*shared / "tokenizer" / name).string())) texts.push_back(std::move(c));
    }
  }
  size_t index = 0;
  bool ok = true;
  // Built-in strings: every vocabulary slot, plain and with add_special+parse_special; shared strings: a
  // different slot each (the fuzzer spreads them further).
  for (size_t i = 0; i < texts.size(); ++i) {
    if (i < n_builtin) {
      for (uint8_t slot = 0; slot < 12; ++slot) {
        ok = ok && save(dir, index++, static_cast<uint8_t>(slot << 3), texts[i]);
        ok = ok && save(dir, index++, static_cast<uint8_t>(slot << 3 | 3), texts[i]);
      }
    } else {
      ok = ok && save(dir, index++, static_cast<uint8_t>((i % 12) << 3 | (i & 3)), texts[i]);
    }
  }
  // Raw-id mode: a run of small ids and a run of large ones.
  std::string ids;
  for (int k = 0; k < 64; ++k) ids.push_back(static_cast<char>(k * 7));
  for (uint8_t slot = 0; slot < 12; ++slot) ok = ok && save(dir, index++, static_cast<uint8_t>(slot << 3 | 4), ids);
  return ok ? 0 : 1;
}
