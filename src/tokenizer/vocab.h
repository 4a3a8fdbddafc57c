// Vocabulary description and the tables built from it. VocabSpec is what a GGUF's tokenizer.ggml.* keys hold;
// Vocab is the immutable, indexed form the encoders and the decoder work on.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/status.h"
#include "tokenizer/pretokenizer.h"

namespace rf::gguf {
class File;
}

namespace rf::tokenizer {

inline constexpr int32_t kNoToken = -1;

enum class VocabType { kSpm, kBpe, kWpm };  // GGUF tokenizer.ggml.model "llama", "gpt2", "bert"

// tokenizer.ggml.token_type values.
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// Per-token attribute bits (a token type plus strip behaviour around special tokens).
enum TokenAttr : uint32_t {
  kAttrUndefined = 0,
  kAttrUnknown = 1u << 0,
  kAttrUnused = 1u << 1,
  kAttrNormal = 1u << 2,
  kAttrControl = 1u << 3,
  kAttrUserDefined = 1u << 4,
  kAttrByte = 1u << 5,
  kAttrLstrip = 1u << 7,  // white space before the token is dropped when it is matched in text
  kAttrRstrip = 1u << 8,  // white space after it is dropped
};

// The tokenizer metadata of a model, as stored in GGUF (ids are as stored; out-of-range ids are ignored later).
struct VocabSpec {
  std::string model;  // "llama", "gpt2", "bert"
  std::string pre;    // tokenizer.ggml.pre ("" when absent)
  std::string name;   // general.name (a few per-model attribute rules depend on it)
  std::vector<std::string> tokens;
  std::vector<float> scores;         // empty: all 0
  std::vector<int32_t> token_types;  // empty: all normal
  std::vector<std::string> merges;   // BPE merges "left right", by rank
  std::optional<int64_t> bos, eos, eot, eom, unk, sep, pad, mask;
  std::optional<int64_t> fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;  // fill-in-the-middle
  std::optional<bool> add_bos, add_eos, add_sep, add_space_prefix;
};

Expected<VocabSpec> read_vocab_spec(const gguf::File& file);

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// Packs two UTF-8 units of at most 4 bytes each into one key.
inline uint64_t pack_char_pair(std::string_view a, std::string_view b) {
  uint64_t key = 0;
  for (char c : a) key = (key << 8) | static_cast<uint8_t>(c);
  key = (key << 3) | a.size();
  for (char c : b) key = (key << 8) | static_cast<uint8_t>(c);
  return (key << 3) | b.size();
}

struct TokenData {
  std::string text;
  float score = 0.0f;
  uint32_t attr = kAttrNormal;
};

struct Vocab {
  VocabType type = VocabType::kSpm;
  std::vector<TokenData> tokens;
  StringMap token_ids;
  StringMap merge_ranks;                      // key "left right"
  std::optional<PreTokenizer> pre_tokenizer;  // BPE only

  int32_t bos = kNoToken, eos = kNoToken, eot = kNoToken, eom = kNoToken, unk = kNoToken, sep = kNoToken,
          pad = kNoToken, mask = kNoToken, nl = kNoToken;
  int32_t fim_pre = kNoToken, fim_suf = kNoToken, fim_mid = kNoToken, fim_pad = kNoToken, fim_rep = kNoToken,
          fim_sep = kNoToken;
  std::set<int32_t> eog;
  bool add_bos = false, add_eos = false, add_sep = false;
  bool add_space_prefix = false;
  bool clean_spaces = false;
  bool ignore_merges = false;
  bool lowercase = false;      // WordPiece normalizer
  bool strip_accents = false;  // WordPiece normalizer
  size_t max_token_len = 0;

  // SentencePiece: pairs of adjacent characters (UTF-8 units packed by pack_char_pair) that occur inside some
  // token. Where two neighbouring characters form no such pair, no merge can ever cross between them.
  std::unordered_set<uint64_t> spm_char_pairs;

  std::vector<int32_t> special_tokens;  // control, user-defined and unknown tokens, longest text first
  std::vector<std::string> pieces;      // detokenized text of every token (specials rendered)

  static Expected<Vocab> build(const VocabSpec& spec);

  int32_t find(std::string_view text) const {
    auto it = token_ids.find(text);
    return it == token_ids.end() ? kNoToken : it->second;
  }
  int32_t n_tokens() const { return static_cast<int32_t>(tokens.size()); }
  // Token of a raw byte: <0xXX> (SentencePiece) or the byte's character (byte-level BPE); kNoToken if none.
  int32_t byte_token(uint8_t byte) const;
};

}  // namespace rf::tokenizer
