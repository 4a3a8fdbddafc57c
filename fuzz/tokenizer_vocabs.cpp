#include "tokenizer_vocabs.h"

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "gguf/gguf.h"
#include "gguf/writer.h"
#include "tokenizer/unicode.h"

namespace rf::fuzz {
namespace {

using gguf::Array;
using gguf::KeyValue;
using gguf::Value;
using gguf::ValueType;
using tokenizer::TokenType;

const std::string kSp = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

// A vocabulary under construction: what the tokenizer.ggml.* keys of a GGUF file will hold.
struct Draft {
  std::string model;
  std::string pre;
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  std::vector<std::string> merges;
  std::vector<std::pair<std::string, uint32_t>> ids;  // "bos" -> tokenizer.ggml.bos_token_id
  std::vector<std::pair<std::string, bool>> flags;    // "add_bos_token" -> tokenizer.ggml.add_bos_token

  uint32_t add(const std::string& text, TokenType type, float score = 0.0f) {
    tokens.push_back(text);
    types.push_back(static_cast<int32_t>(type));
    scores.push_back(score);
    return static_cast<uint32_t>(tokens.size() - 1);
  }
  bool has(const std::string& text) const {
    for (const auto& t : tokens) {
      if (t == text) return true;
    }
    return false;
  }

  std::vector<KeyValue> metadata() const {
    Array tok{ValueType::STRING, {}}, sc{ValueType::FLOAT32, {}}, ty{ValueType::INT32, {}}, mg{ValueType::STRING, {}};
    for (const auto& t : tokens) tok.items.emplace_back(t);
    for (float s : scores) sc.items.emplace_back(s);
    for (int32_t t : types) ty.items.emplace_back(t);
    for (const auto& m : merges) mg.items.emplace_back(m);
    std::vector<KeyValue> kvs = {{"general.architecture", std::string("llama")},
                                 {"tokenizer.ggml.model", model},
                                 {"tokenizer.ggml.tokens", tok},
                                 {"tokenizer.ggml.scores", sc},
                                 {"tokenizer.ggml.token_type", ty}};
    if (!pre.empty()) kvs.push_back({"tokenizer.ggml.pre", pre});
    if (!merges.empty()) kvs.push_back({"tokenizer.ggml.merges", mg});
    for (const auto& [key, id] : ids) kvs.push_back({"tokenizer.ggml." + key + "_token_id", id});
    for (const auto& [key, on] : flags) kvs.push_back({"tokenizer.ggml." + key, on});
    return kvs;
  }
};

// Raw bytes in the byte-level alphabet of GPT-2 style BPE vocabularies.
std::string byte_level(const std::string& raw) {
  std::string out;
  for (char c : raw) out += tokenizer::byte_to_bpe_char(static_cast<uint8_t>(c));
  return out;
}

Draft spm_draft() {
  Draft d;
  d.model = "llama";
  d.add("<unk>", TokenType::kUnknown);
  d.add("<s>", TokenType::kControl);
  d.add("</s>", TokenType::kControl);
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) d.add(std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">", TokenType::kByte);
  // Pieces, best score first; every multi-character piece splits into two pieces so that the merges reach it.
  const std::vector<std::string> pieces = {kSp + "the",
                                           kSp + "t",
                                           "he",
                                           kSp + "and",
                                           kSp + "a",
                                           "an",
                                           "nd",
                                           kSp + "world",
                                           kSp + "wor",
                                           kSp + "w",
                                           "or",
                                           "ld",
                                           "er",
                                           "in",
                                           kSp + "in",
                                           kSp + "i",
                                           "\xC3\xA9",
                                           kSp + "\xC3\xA9",
                                           "\xE4\xB8\xAD\xE6\x96\x87",
                                           kSp + kSp,
                                           kSp + kSp + kSp + kSp,
                                           kSp,
                                           "t",
                                           "h",
                                           "e",
                                           "a",
                                           "n",
                                           "d",
                                           "w",
                                           "o",
                                           "r",
                                           "l",
                                           "i",
                                           "\xE4\xB8\xAD",
                                           "\xE6\x96\x87"};
  float score = 0.0f;
  for (const auto& p : pieces) d.add(p, TokenType::kNormal, score -= 1.0f);
  d.add("<tag>", TokenType::kUserDefined);
  d.add("<|turn|>", TokenType::kControl);
  d.add("<unused0>", TokenType::kUnused);
  d.add("zz", TokenType::kUndefined, -0.5f);  // reachable by merges, yet renders as nothing
  d.ids = {{"bos", 1}, {"eos", 2}, {"unknown", 0}};
  d.flags = {{"add_bos_token", true}, {"add_eos_token", false}};
  return d;
}

Draft bpe_draft(const std::string& pre, bool add_bos) {
  Draft d;
  d.model = "gpt2";
  d.pre = pre;
  for (int b = 0; b < 256; ++b) d.add(tokenizer::byte_to_bpe_char(static_cast<uint8_t>(b)), TokenType::kNormal);
  const std::vector<std::pair<std::string, std::string>> merges = {
      {" ", "t"},           {"h", "e"},        {" t", "he"}, {" ", "a"}, {"n", "d"},     {" a", "nd"},
      {" ", "w"},           {"o", "r"},        {" w", "or"}, {"l", "d"}, {" wor", "ld"}, {"i", "n"},
      {" ", "i"},           {" i", "n"},       {"e", "r"},   {"'", "s"}, {"1", "2"},     {"12", "3"},
      {"\xC3", "\xA9"},     {" ", "\xC3\xA9"}, {"\n", "\n"}, {" ", " "}, {"  ", "  "},   {"\xE4", "\xB8"},
      {"\xE4\xB8", "\xAD"}, {"t", "he"}};
  for (const auto& [left, right] : merges) {
    d.merges.push_back(byte_level(left) + " " + byte_level(right));
    if (!d.has(byte_level(left + right))) d.add(byte_level(left + right), TokenType::kNormal);
  }
  const uint32_t eot = d.add("<|endoftext|>", TokenType::kControl);
  d.add("<|im_start|>", TokenType::kControl);
  d.add("<|im_end|>", TokenType::kControl);
  d.add("<sep>", TokenType::kUserDefined);
  d.add("<unused_1>", TokenType::kUnused);
  d.ids = {{"bos", eot}, {"eos", eot}};
  d.flags = {{"add_bos_token", add_bos}};
  return d;
}

Draft wpm_draft() {
  Draft d;
  d.model = "bert";
  d.add("[PAD]", TokenType::kControl);
  d.add("[UNK]", TokenType::kUnknown);
  d.add("[CLS]", TokenType::kControl);
  d.add("[SEP]", TokenType::kControl);
  d.add("[MASK]", TokenType::kControl);
  for (const std::string& w :
       {kSp + "hello", kSp + "world", kSp + "wor", std::string("ld"), std::string("lo"), kSp + "hel", kSp + ",",
        kSp + ".", kSp + "a", std::string("b"), kSp + "the", std::string("s"), kSp + "\xE4\xB8\xAD", kSp + "e"}) {
    d.add(w, TokenType::kNormal);
  }
  d.ids = {{"unknown", 1}, {"bos", 2}, {"seperator", 3}, {"padding", 0}, {"mask", 4}};  // sic: GGUF's spelling
  return d;
}

std::vector<std::pair<std::string, Draft>> drafts() {
  return {{"builtin-spm", spm_draft()},
          {"builtin-bpe-gpt2", bpe_draft("gpt-2", false)},
          {"builtin-bpe-llama3", bpe_draft("llama3", true)},
          {"builtin-bpe-qwen2", bpe_draft("qwen2", false)},
          {"builtin-wpm", wpm_draft()}};
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "tokenizer_vocabs: %s\n", what.c_str());
  std::abort();
}

}  // namespace

std::vector<std::pair<std::string, std::vector<uint8_t>>> builtin_vocab_files() {
  std::vector<std::pair<std::string, std::vector<uint8_t>>> files;
  for (const auto& [name, draft] : drafts()) {
    const std::vector<KeyValue> kvs = draft.metadata();
    auto bytes = gguf::write_memory(kvs, {}, 3);
    if (!bytes.ok()) die(name + ": " + bytes.error_message());
    files.emplace_back(name, std::move(*bytes));
  }
  return files;
}

std::vector<NamedTokenizer> builtin_tokenizers() {
  std::vector<NamedTokenizer> out;
  for (const auto& [name, bytes] : builtin_vocab_files()) {
    auto file = gguf::File::parse(bytes, name);
    if (!file.ok()) die(file.error_message());
    auto tok = tokenizer::Tokenizer::from_gguf(**file);
    if (!tok.ok()) die(tok.error_message());
    out.push_back({name, std::move(*tok)});
  }
  return out;
}

}  // namespace rf::fuzz
