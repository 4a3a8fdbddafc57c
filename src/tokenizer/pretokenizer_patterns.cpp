#include "tokenizer/pretokenizer_patterns.h"

#include <array>

namespace rf::tokenizer {
namespace {

using Patterns = std::vector<std::string>;

Patterns default_patterns() {
  return {R"([\p{P}\$\+<=>\^~\|]+)", std::string(kGpt2Pattern), R"(\p{N}+)", R"([0-9][0-9][0-9])"};
}
Patterns gpt2_patterns() { return {std::string(kGpt2Pattern)}; }
Patterns llama3_patterns() { return {std::string(kLlama3Pattern)}; }
Patterns starcoder_patterns() { return {R"(\p{N})", std::string(kGpt2Pattern)}; }
Patterns falcon_patterns() {
  return {R"([\p{P}\$\+<=>\^~\|`]+)", std::string(kGpt2Pattern), R"([0-9][0-9][0-9])"};
}
Patterns qwen2_patterns() {
  return {
      R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"};
}
Patterns deepseek_llm_patterns() {
  return {
      R"([\r\n])",
      R"(\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+)",
      R"(\s?[!-/:-~！-／：-～‘-‟　-。]+)",
      R"(\s+$)",
      R"([一-龥ࠀ-一가-퟿]+)",
      R"(\p{N}+)",
  };
}
Patterns deepseek_coder_patterns() {
  return {R"([\r\n])", R"(\s?\p{L}+)", R"(\s?\p{P}+)", R"([一-龥ࠀ-一가-퟿]+)", R"(\p{N})"};
}
Patterns bloom_patterns() { return {R"( ?[^(\s|.,!?…。，、।۔،)]+)"}; }
Patterns viking_patterns() { return {R"( ?[^(\s|.,!?…。，、।۔،)]+)", R"(\p{N})"}; }
// Tekken and GPT-4o: letters split by case through lookaheads, since the collapsed matcher has no case classes.
Patterns tekken_patterns() {
  return {
      R"([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)"};
}
Patterns gpt4o_patterns() {
  return {
      R"([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)"};
}

struct Entry {
  std::string_view name;
  Patterns (*patterns)();
  bool clean_spaces;
  bool ignore_merges;
  int add_bos;  // -1: no override
};

constexpr std::array<Entry, 38> kEntries = {{
    {"default", default_patterns, true, false, -1},
    {"llama3", llama3_patterns, true, true, 1},
    {"llama-v3", llama3_patterns, true, true, 1},
    {"llama-bpe", llama3_patterns, true, true, 1},
    {"falcon3", llama3_patterns, true, true, 1},
    {"falcon-h1", llama3_patterns, true, true, 1},
    {"pixtral", llama3_patterns, true, true, 1},
    {"dbrx", llama3_patterns, true, false, -1},
    {"smaug-bpe", llama3_patterns, true, false, -1},
    {"deepseek-llm", deepseek_llm_patterns, false, false, -1},
    {"deepseek-coder", deepseek_coder_patterns, false, false, -1},
    {"falcon", falcon_patterns, true, false, -1},
    {"mpt", gpt2_patterns, true, false, -1},
    {"gpt-2", gpt2_patterns, true, false, -1},
    {"phi-2", gpt2_patterns, true, false, -1},
    {"jina-es", gpt2_patterns, true, false, -1},
    {"jina-de", gpt2_patterns, true, false, -1},
    {"olmo", gpt2_patterns, true, false, -1},
    {"jais", gpt2_patterns, true, false, -1},
    {"exaone4", gpt2_patterns, true, false, -1},
    {"trillion", gpt2_patterns, false, false, -1},
    {"granite-docling", gpt2_patterns, false, false, -1},
    {"starcoder", starcoder_patterns, true, false, -1},
    {"refact", starcoder_patterns, true, false, -1},
    {"command-r", starcoder_patterns, false, false, -1},
    {"smollm", starcoder_patterns, false, false, -1},
    {"codeshell", starcoder_patterns, true, false, -1},
    {"exaone", starcoder_patterns, true, false, -1},
    {"minerva-7b", starcoder_patterns, true, false, -1},
    {"qwen2", qwen2_patterns, false, false, -1},
    {"deepseek-r1-qwen", qwen2_patterns, false, false, -1},
    {"megrez", qwen2_patterns, true, false, -1},
    {"stablelm2", qwen2_patterns, true, false, -1},
    {"poro-chat", bloom_patterns, false, false, -1},
    {"bloom", bloom_patterns, true, false, -1},
    {"viking", viking_patterns, false, false, -1},
    {"tekken", tekken_patterns, false, true, 1},
    {"gpt-4o", gpt4o_patterns, false, false, -1},
}};

}  // namespace

std::optional<PreTokenizerConfig> pre_tokenizer_config(std::string_view name) {
  if (name.empty()) name = "default";
  if (name == "llama4") name = "gpt-4o";
  if (name == "gpt3-finnish") name = "bloom";
  for (const Entry& e : kEntries) {
    if (e.name != name) continue;
    PreTokenizerConfig config;
    config.patterns = e.patterns();
    config.clean_spaces = e.clean_spaces;
    config.ignore_merges = e.ignore_merges;
    if (e.add_bos >= 0) config.add_bos = e.add_bos == 1;
    return config;
  }
  return std::nullopt;
}

}  // namespace rf::tokenizer
