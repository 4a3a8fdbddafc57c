// Writes the seed corpus of tokenizer_gguf_fuzz into a folder: the built-in vocabularies as GGUF files.
#include <cstdio>
#include <string>

#include "tokenizer_vocabs.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  bool ok = true;
  for (const auto& [name, bytes] : rf::fuzz::builtin_vocab_files()) {
    const std::string path = std::string(argv[1]) + "/" + name + ".gguf";
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr) return 1;
    ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size() && ok;
    ok = std::fclose(f) == 0 && ok;
  }
  return ok ? 0 : 1;
}
