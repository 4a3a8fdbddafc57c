// Small vocabularies of every tokenizer model, written as GGUF files by the project's own writer and loaded back
// through Tokenizer::from_gguf, so that the fuzzers do not need the reference data (../shared) to run.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace rf::fuzz {

struct NamedTokenizer {
  std::string name;
  std::shared_ptr<const tokenizer::Tokenizer> tokenizer;
};

// SentencePiece ("llama") with byte fallback, byte-level BPE ("gpt2") with the gpt-2, llama3 and qwen2
// pre-tokenizers, and WordPiece ("bert"); each has control, user-defined and unused tokens. Aborts if one
// fails to build (that is a bug in the tokenizer or the writer, not in the fuzz input).
std::vector<NamedTokenizer> builtin_tokenizers();

// The GGUF bytes of the built-in vocabularies (name, file), for seed corpora.
std::vector<std::pair<std::string, std::vector<uint8_t>>> builtin_vocab_files();

}  // namespace rf::fuzz
