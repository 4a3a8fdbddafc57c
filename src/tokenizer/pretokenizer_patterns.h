// Pre-tokenizer configurations by `tokenizer.ggml.pre` name: the split patterns and the decoding/merging options
// that go with them. The patterns are format data (the published pre-tokenizer regexes of each model family, in
// the form the reference engine runs them).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rf::tokenizer {

// GPT-2's split pattern; recognized and run by a dedicated scanner.
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
// LLaMA 3's split pattern with the case-insensitive group spelled out; run by a dedicated scanner.
inline constexpr std::string_view kLlama3Pattern =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?)"
    R"([^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

struct PreTokenizerConfig {
  std::vector<std::string> patterns;
  bool clean_spaces = true;     // detokenizer removes spaces before punctuation (" ." -> ".")
  bool ignore_merges = false;   // a word that is itself a token is emitted without running merges
  std::optional<bool> add_bos;  // default for add_bos before tokenizer.ggml.add_bos_token
};

// nullopt when `name` is not a known pre-tokenizer. An empty name means "default".
std::optional<PreTokenizerConfig> pre_tokenizer_config(std::string_view name);

}  // namespace rf::tokenizer
