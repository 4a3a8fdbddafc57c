#include "tokenizer/pretokenizer_patterns.h"

#include <array>

namespace rf::tokenizer {
namespace {

// Non-ASCII pattern characters are written as \x{..} so that no editor or tool can normalize them.
using Patterns = std::vector<std::string>;

Patterns default_patterns() {
  return {R"([\p{P}\$\+<=>\^~\|]+)", std::string(kGpt2Pattern), R"(\p{N}+)", R"([0-9][0-9][0-9])"};
}
Patterns gpt2_patterns() { return {std::string(kGpt2Pattern)}; }
Patterns llama3_patterns() { return {std::string(kLlama3Pattern)}; }
Patterns starcoder_patterns() { return {R"(\p{N})", std::string(kGpt2Pattern)}; }
Patterns falcon_patterns() { return {R"([\p{P}\$\+<=>\^~\|`]+)", std::string(kGpt2Pattern), R"([0-9][0-9][0-9])"}; }
Patterns qwen2_patterns() {
  return {R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\)"
          R"(p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"};
}
Patterns deepseek_llm_patterns() {
  return {
      R"([\r\n])",
      R"(\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x)"
      R"({2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{)"
      R"(3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F)"
      R"(5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-)"
      R"(\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{)"
      R"(1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4)"
      R"(}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\)"
      R"(x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A)"
      R"(}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{)"
      R"(2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69)"
      R"(B}\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-)"
      R"(\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104)"
      R"(FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+)",
      R"(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)",
      R"(\s+$)",
      R"([\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+)",
      R"(\p{N}+)",
  };
}
Patterns deepseek_coder_patterns() {
  return {R"([\r\n])", R"(\s?\p{L}+)", R"(\s?\p{P}+)", R"([\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+)",
          R"(\p{N})"};
}
constexpr std::string_view kBloomPattern = R"( ?[^(\s|.,!?\x{2026}\x{3002}\x{FF0C}\x{3001}\x{964}\x{6D4}\x{60C})]+)";
Patterns bloom_patterns() { return {std::string(kBloomPattern)}; }
Patterns viking_patterns() { return {std::string(kBloomPattern), R"(\p{N})"}; }
// Tekken and GPT-4o: letters split by case through lookaheads, since the collapsed matcher has no case classes.
Patterns tekken_patterns() {
  return {R"([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^)"
          R"(a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)"};
}
Patterns gpt4o_patterns() {
  return {R"([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE])"
          R"(|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|)"
          R"('[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n)"
          R"(]+|\s+(?!\S)|\s+)"};
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
