#include "tokenizer/vocab.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "gguf/gguf.h"
#include "tokenizer/pretokenizer_patterns.h"
#include "tokenizer/unicode.h"

namespace rf::tokenizer {
namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

// Texts that mark end-of-turn tokens in models whose metadata does not name one (first match wins).
constexpr std::array<std::string_view, 11> kEotTexts = {"<|eot_id|>",
                                                        "<|im_end|>",
                                                        "<|end|>",
                                                        "<end_of_turn>",
                                                        "<|endoftext|>",
                                                        "<|end_of_text|>",
                                                        "<EOT>",
                                                        "_<EOT>",
                                                        "[EOT]",
                                                        "<\xEF\xBD\x9C"
                                                        "end\xE2\x96\x81"
                                                        "of\xE2\x96\x81"
                                                        "sentence\xEF\xBD\x9C>",
                                                        "<end_of_utterance>"};
// Texts of tokens that end generation.
constexpr std::array<std::string_view, 15> kEogTexts = {
    "<|eot_id|>", "<|im_end|>", "<|end|>",   "<end_of_turn>", "<|endoftext|>",   "<|eom_id|>",
    "<EOT>",      "_<EOT>",     "[EOT]",     "</s>",          "<|end_of_text|>", "<end_of_utterance>",
    "<eos>",      "[EOS]",      "<|return|>"};

// Fill-in-the-middle tokens recognized by their text (first match wins); they are control tokens.
const std::vector<std::string_view> kFimPreTexts = {"<|fim_prefix|>",
                                                    "<fim-prefix>",
                                                    "<fim_prefix>",
                                                    "<\xEF\xBD\x9C"
                                                    "fim\xE2\x96\x81"
                                                    "begin\xEF\xBD\x9C>",
                                                    "<PRE>",
                                                    "\xE2\x96\x81<PRE>",
                                                    "<|code_prefix|>",
                                                    "<|prefix|>"};
const std::vector<std::string_view> kFimSufTexts = {"<|fim_suffix|>",
                                                    "<fim-suffix>",
                                                    "<fim_suffix>",
                                                    "<\xEF\xBD\x9C"
                                                    "fim\xE2\x96\x81"
                                                    "hole\xEF\xBD\x9C>",
                                                    "<SUF>",
                                                    "\xE2\x96\x81<SUF>",
                                                    "<|code_suffix|>",
                                                    "<|suffix|>"};
const std::vector<std::string_view> kFimMidTexts = {"<|fim_middle|>",
                                                    "<fim-middle>",
                                                    "<fim_middle>",
                                                    "<\xEF\xBD\x9C"
                                                    "fim\xE2\x96\x81"
                                                    "end\xEF\xBD\x9C>",
                                                    "<MID>",
                                                    "\xE2\x96\x81<MID>",
                                                    "<|code_middle|>",
                                                    "<|middle|>"};
const std::vector<std::string_view> kFimPadTexts = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"};
const std::vector<std::string_view> kFimRepTexts = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>",
                                                    "<reponame>"};
const std::vector<std::string_view> kFimSepTexts = {"<|file_sep|>"};

uint32_t attr_of_type(int32_t type) {
  switch (static_cast<TokenType>(type)) {
    case TokenType::kNormal:
      return kAttrNormal;
    case TokenType::kUnknown:
      return kAttrUnknown;
    case TokenType::kControl:
      return kAttrControl;
    case TokenType::kUserDefined:
      return kAttrUserDefined;
    case TokenType::kUnused:
      return kAttrUnused;
    case TokenType::kByte:
      return kAttrByte;
    default:
      return kAttrUndefined;
  }
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (true) {
    const size_t hit = s.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out.append(to);
    pos = hit + from.size();
  }
  out.append(s, pos, std::string::npos);
  s.swap(out);
}

// Byte-level BPE token text back to bytes.
std::string decode_byte_level(const std::string& text) {
  std::string out;
  for (uint32_t cp : decode_utf8(text)) {
    const int b = bpe_char_to_byte(cp);
    if (b >= 0) {
      out.push_back(static_cast<char>(b));
    } else {
      std::string utf8;
      append_utf8(utf8, cp);
      out += "[UNK_BYTE_0x";
      static constexpr char kHex[] = "0123456789abcdef";
      for (char c : utf8) {
        out.push_back(kHex[static_cast<uint8_t>(c) >> 4]);
        out.push_back(kHex[static_cast<uint8_t>(c) & 15]);
      }
      out += text + "]";
    }
  }
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The byte of a "<0xXX>" token.
char byte_of_token(const std::string& text) {
  if (text.size() < 6) return 0;
  const int hi = hex_value(text[3]);
  const int lo = hex_value(text[4]);
  return static_cast<char>(hi < 0 || lo < 0 ? 0 : hi * 16 + lo);
}

std::string render_piece(const Vocab& v, const TokenData& t) {
  if (t.attr & (kAttrUnknown | kAttrControl | kAttrUserDefined)) return t.text;
  if (t.attr & kAttrNormal) {
    if (v.type == VocabType::kBpe) return decode_byte_level(t.text);
    std::string s = t.text;
    replace_all(s, kSpaceMarker, " ");
    return s;
  }
  if (t.attr & kAttrByte) return std::string(1, byte_of_token(t.text));
  return "";
}

template <typename T>
Status get_optional(const gguf::File& f, std::string_view key, std::optional<T>& out) {
  if (!f.has(key)) return ok_status();
  auto v = f.get<T>(key);
  if (!v) return v.status();
  out = *v;
  return ok_status();
}

}  // namespace

Expected<VocabSpec> read_vocab_spec(const gguf::File& f) {
  VocabSpec s;
  auto model = f.get<std::string>("tokenizer.ggml.model");
  if (!model) return model.status();
  s.model = *model;
  auto pre = f.get_or<std::string>("tokenizer.ggml.pre", "");
  if (!pre) return pre.status();
  s.pre = *pre;
  auto name = f.get_or<std::string>("general.name", "");
  if (!name) return name.status();
  s.name = *name;
  auto tokens = f.get<std::vector<std::string>>("tokenizer.ggml.tokens");
  if (!tokens) return tokens.status();
  s.tokens = std::move(*tokens);
  if (f.has("tokenizer.ggml.scores")) {
    auto scores = f.get<std::vector<float>>("tokenizer.ggml.scores");
    if (scores) {
      s.scores = std::move(*scores);
    } else {
      auto iscores = f.get<std::vector<int32_t>>("tokenizer.ggml.scores");
      if (!iscores) return scores.status();
      for (int32_t x : *iscores) s.scores.push_back(static_cast<float>(x));
    }
  }
  if (f.has("tokenizer.ggml.token_type")) {
    auto types = f.get<std::vector<int32_t>>("tokenizer.ggml.token_type");
    if (!types) return types.status();
    s.token_types = std::move(*types);
  }
  if (f.has("tokenizer.ggml.merges")) {
    auto merges = f.get<std::vector<std::string>>("tokenizer.ggml.merges");
    if (!merges) return merges.status();
    s.merges = std::move(*merges);
  }
  const std::array<std::pair<std::string_view, std::optional<int64_t>*>, 8> ids = {{
      {"tokenizer.ggml.bos_token_id", &s.bos},
      {"tokenizer.ggml.eos_token_id", &s.eos},
      {"tokenizer.ggml.eot_token_id", &s.eot},
      {"tokenizer.ggml.eom_token_id", &s.eom},
      {"tokenizer.ggml.unknown_token_id", &s.unk},
      {"tokenizer.ggml.seperator_token_id", &s.sep},  // sic: the GGUF key is spelled this way
      {"tokenizer.ggml.padding_token_id", &s.pad},
      {"tokenizer.ggml.mask_token_id", &s.mask},
  }};
  for (const auto& [key, slot] : ids) RF_RETURN_IF_ERROR(get_optional(f, key, *slot));
  const std::array<std::pair<std::string_view, std::optional<int64_t>*>, 9> fim_ids = {{
      {"tokenizer.ggml.fim_pre_token_id", &s.fim_pre},
      {"tokenizer.ggml.fim_suf_token_id", &s.fim_suf},
      {"tokenizer.ggml.fim_mid_token_id", &s.fim_mid},
      {"tokenizer.ggml.fim_pad_token_id", &s.fim_pad},
      {"tokenizer.ggml.fim_rep_token_id", &s.fim_rep},
      {"tokenizer.ggml.fim_sep_token_id", &s.fim_sep},
      {"tokenizer.ggml.prefix_token_id", &s.fim_pre},  // older names
      {"tokenizer.ggml.suffix_token_id", &s.fim_suf},
      {"tokenizer.ggml.middle_token_id", &s.fim_mid},
  }};
  for (const auto& [key, slot] : fim_ids) {
    if (!slot->has_value()) RF_RETURN_IF_ERROR(get_optional(f, key, *slot));
  }
  RF_RETURN_IF_ERROR(get_optional(f, "tokenizer.ggml.add_bos_token", s.add_bos));
  RF_RETURN_IF_ERROR(get_optional(f, "tokenizer.ggml.add_eos_token", s.add_eos));
  RF_RETURN_IF_ERROR(get_optional(f, "tokenizer.ggml.add_sep_token", s.add_sep));
  RF_RETURN_IF_ERROR(get_optional(f, "tokenizer.ggml.add_space_prefix", s.add_space_prefix));
  return s;
}

int32_t Vocab::byte_token(uint8_t byte) const {
  if (type == VocabType::kSpm) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    const char name[6] = {'<', '0', 'x', kHex[byte >> 4], kHex[byte & 15], '>'};
    const int32_t id = find(std::string_view(name, 6));
    if (id != kNoToken) return id;
    return find(std::string_view(reinterpret_cast<const char*>(&byte), 1));
  }
  return find(byte_to_bpe_char(byte));
}

Expected<Vocab> Vocab::build(const VocabSpec& spec) {
  Vocab v;
  const size_t n = spec.tokens.size();
  if (n == 0) return Status::error("tokenizer: tokenizer.ggml.tokens is empty");
  if (!spec.scores.empty() && spec.scores.size() < n) {
    return Status::error("tokenizer: tokenizer.ggml.scores has " + std::to_string(spec.scores.size()) +
                         " entries but there are " + std::to_string(n) + " tokens");
  }
  if (!spec.token_types.empty() && spec.token_types.size() < n) {
    return Status::error("tokenizer: tokenizer.ggml.token_type has " + std::to_string(spec.token_types.size()) +
                         " entries but there are " + std::to_string(n) + " tokens");
  }

  if (spec.model == "llama") {
    v.type = VocabType::kSpm;
    v.bos = 1, v.eos = 2, v.unk = 0;
    v.add_space_prefix = true, v.add_bos = true;
  } else if (spec.model == "gpt2") {
    v.type = VocabType::kBpe;
    v.bos = 11, v.eos = 11;
    if (spec.merges.empty()) return Status::error("tokenizer: gpt2 vocabulary without tokenizer.ggml.merges");
    auto config = pre_tokenizer_config(spec.pre);
    if (!config) return Status::error("tokenizer: unknown pre-tokenizer tokenizer.ggml.pre = '" + spec.pre + "'");
    auto pre = PreTokenizer::create(config->patterns);
    if (!pre) return pre.status();
    v.pre_tokenizer = std::move(*pre);
    v.clean_spaces = config->clean_spaces;
    v.ignore_merges = config->ignore_merges;
    v.add_bos = config->add_bos.value_or(false);
  } else if (spec.model == "bert") {
    v.type = VocabType::kWpm;
    v.bos = 101, v.unk = 100, v.sep = 102, v.pad = 0, v.mask = 103;
    v.add_bos = true, v.add_sep = true, v.clean_spaces = true;
    v.lowercase = true, v.strip_accents = true;
  } else {
    return Status::error("tokenizer: unsupported tokenizer.ggml.model '" + spec.model +
                         "' (supported: llama, gpt2, bert)");
  }
  if (spec.add_space_prefix) v.add_space_prefix = *spec.add_space_prefix;

  v.tokens.resize(n);
  v.token_ids.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    TokenData& t = v.tokens[i];
    t.text = spec.tokens[i].empty() ? "[EMPTY_" + std::to_string(i) + "]" : spec.tokens[i];
    t.score = spec.scores.empty() ? 0.0f : spec.scores[i];
    t.attr = spec.token_types.empty() ? kAttrNormal : attr_of_type(spec.token_types[i]);
    auto [it, inserted] = v.token_ids.emplace(t.text, static_cast<int32_t>(i));
    if (!inserted) {
      return Status::error("tokenizer: duplicate token '" + t.text + "' at ids " + std::to_string(it->second) +
                           " and " + std::to_string(i));
    }
    v.max_token_len = std::max(v.max_token_len, t.text.size());
  }

  v.merge_ranks.reserve(spec.merges.size());
  for (size_t i = 0; i < spec.merges.size(); ++i) {
    const std::string& m = spec.merges[i];
    if (m.find(' ', 1) == std::string::npos) continue;  // malformed: no "left right" split
    v.merge_ranks.emplace(m, static_cast<int32_t>(i));
  }

  // Special ids: a default outside the vocabulary is dropped; a stored id outside it is ignored.
  auto set_id = [&](int32_t& slot, const std::optional<int64_t>& stored) {
    if (slot >= static_cast<int32_t>(n)) slot = kNoToken;
    if (stored && *stored >= 0 && *stored < static_cast<int64_t>(n)) slot = static_cast<int32_t>(*stored);
  };
  set_id(v.bos, spec.bos);
  set_id(v.eos, spec.eos);
  set_id(v.eot, spec.eot);
  set_id(v.eom, spec.eom);
  set_id(v.unk, spec.unk);
  set_id(v.sep, spec.sep);
  set_id(v.pad, spec.pad);
  set_id(v.mask, spec.mask);
  set_id(v.fim_pre, spec.fim_pre);
  set_id(v.fim_suf, spec.fim_suf);
  set_id(v.fim_mid, spec.fim_mid);
  set_id(v.fim_pad, spec.fim_pad);
  set_id(v.fim_rep, spec.fim_rep);
  set_id(v.fim_sep, spec.fim_sep);
  if (spec.add_bos) v.add_bos = *spec.add_bos;
  if (spec.add_eos) v.add_eos = *spec.add_eos;
  if (spec.add_sep) v.add_sep = *spec.add_sep;
  if (v.add_bos && v.bos == kNoToken) return Status::error("tokenizer: add_bos_token is true but there is no BOS id");
  if (v.add_eos && v.eos == kNoToken) return Status::error("tokenizer: add_eos_token is true but there is no EOS id");

  // End-of-turn / end-of-generation tokens recognized by their text; they are control tokens.
  if (v.eot == kNoToken) {
    for (std::string_view text : kEotTexts) {
      if (const int32_t id = v.find(text); id != kNoToken) {
        v.eot = id;
        break;
      }
    }
  }
  if (v.eom == kNoToken) v.eom = v.find("<|eom_id|>");
  const std::array<std::pair<int32_t*, const std::vector<std::string_view>*>, 6> fim = {{
      {&v.fim_pre, &kFimPreTexts},
      {&v.fim_suf, &kFimSufTexts},
      {&v.fim_mid, &kFimMidTexts},
      {&v.fim_pad, &kFimPadTexts},
      {&v.fim_rep, &kFimRepTexts},
      {&v.fim_sep, &kFimSepTexts},
  }};
  for (const auto& [slot, texts] : fim) {
    for (size_t k = 0; k < texts->size() && *slot == kNoToken; ++k) *slot = v.find((*texts)[k]);
    if (*slot != kNoToken) v.tokens[*slot].attr |= kAttrControl;
  }
  for (int32_t id : {v.fim_pad, v.fim_rep, v.fim_sep}) {
    if (id != kNoToken) v.eog.insert(id);
  }
  for (std::string_view text : kEogTexts) {
    if (const int32_t id = v.find(text); id != kNoToken) v.eog.insert(id);
  }
  for (int32_t id : {v.eos, v.eot, v.eom}) {
    if (id != kNoToken) v.eog.insert(id);
  }
  for (int32_t id : v.eog) v.tokens[id].attr |= kAttrControl;
  for (TokenData& t : v.tokens) {
    if ((t.attr & kAttrControl) && t.text.find("unused") != std::string::npos) t.attr |= kAttrUnused;
  }

  for (size_t i = 0; i < n; ++i) {
    if (v.tokens[i].attr & (kAttrControl | kAttrUserDefined | kAttrUnknown)) {
      v.special_tokens.push_back(static_cast<int32_t>(i));
    }
  }
  std::stable_sort(v.special_tokens.begin(), v.special_tokens.end(),
                   [&](int32_t a, int32_t b) { return v.tokens[a].text.size() > v.tokens[b].text.size(); });

  if (v.type == VocabType::kSpm) {
    for (const TokenData& t : v.tokens) {
      const std::string_view text = t.text;
      size_t prev_start = 0, prev_len = 0;
      for (size_t off = 0; off < text.size();) {
        const size_t len = std::min(utf8_sequence_length(static_cast<uint8_t>(text[off])), text.size() - off);
        if (off > 0) v.spm_char_pairs.insert(pack_char_pair(text.substr(prev_start, prev_len), text.substr(off, len)));
        prev_start = off, prev_len = len;
        off += len;
      }
    }
  }

  v.pieces.reserve(n);
  for (const TokenData& t : v.tokens) v.pieces.push_back(render_piece(v, t));

  // Strip rules the reference applies by model name (the GGUF has no field for them).
  std::string lower_name = spec.name;
  for (char& c : lower_name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower_name.find("phi-3") != std::string::npos || lower_name.find("phi3") != std::string::npos) {
    for (int32_t id : v.special_tokens) v.tokens[id].attr |= kAttrRstrip;
    if (int32_t id = v.find("</s>"); id != kNoToken) v.tokens[id].attr |= kAttrRstrip;
    for (std::string_view text : {"<unk>", "<s>", "<|endoftext|>"}) {
      if (int32_t id = v.find(text); id != kNoToken) v.tokens[id].attr &= ~kAttrRstrip;
    }
  }
  if (spec.pre == "jina-v2-de" || spec.pre == "jina-v2-es" || spec.pre == "jina-v2-code") {
    if (int32_t id = v.find("<mask>"); id != kNoToken) v.tokens[id].attr |= kAttrLstrip;
  }
  return v;
}

}  // namespace rf::tokenizer
