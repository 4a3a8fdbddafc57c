#include "tokenizer/tokenizer.h"

#include "gguf/gguf.h"
#include "tokenizer/encoders.h"

namespace rf::tokenizer {
namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";

struct Fragment {
  int32_t token;  // kNoToken for raw text
  size_t offset;
  size_t length;
};

bool is_ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

// Splits text around special tokens, longest token first: each token's occurrences are cut out of the raw
// fragments left by the tokens before it. Control/unknown tokens take part only with parse_special.
std::vector<Fragment> partition(const Vocab& vocab, std::string_view text, bool parse_special) {
  std::vector<Fragment> fragments;
  if (text.empty()) return fragments;
  fragments.push_back({kNoToken, 0, text.size()});
  std::vector<Fragment> next;
  for (int32_t id : vocab.special_tokens) {
    const TokenData& token = vocab.tokens[id];
    if (!parse_special && (token.attr & (kAttrControl | kAttrUnknown))) continue;
    const std::string& needle = token.text;
    next.clear();
    bool changed = false;
    for (const Fragment& f : fragments) {
      if (f.token != kNoToken) {
        next.push_back(f);
        continue;
      }
      size_t base = f.offset;
      size_t remaining = f.length;
      while (remaining > 0) {
        const size_t hit = text.substr(0, base + remaining).find(needle, base);
        if (hit == std::string_view::npos) {
          next.push_back({kNoToken, base, remaining});
          break;
        }
        changed = true;
        size_t left_len = hit - base;
        if (token.attr & kAttrLstrip) {
          while (left_len > 0 && is_ascii_space(text[base + left_len - 1])) --left_len;
        }
        if (left_len > 0) next.push_back({kNoToken, base, left_len});
        next.push_back({id, hit, needle.size()});
        size_t right = hit + needle.size();
        size_t right_len = base + remaining - right;
        if (token.attr & kAttrRstrip) {
          while (right_len > 0 && is_ascii_space(text[right])) ++right, --right_len;
        }
        base = right;
        remaining = right_len;
      }
    }
    if (changed) fragments.swap(next);
  }
  return fragments;
}

}  // namespace

Expected<std::shared_ptr<const Tokenizer>> Tokenizer::create(const VocabSpec& spec) {
  auto vocab = Vocab::build(spec);
  if (!vocab) return vocab.status();
  std::shared_ptr<Tokenizer> tok(new Tokenizer(std::move(*vocab)));
  // The newline token: SentencePiece's <0x0A>, otherwise whatever "\n" encodes to first.
  if (tok->vocab_.type == VocabType::kSpm) {
    tok->vocab_.nl = tok->vocab_.byte_token('\n');
  } else if (tok->vocab_.type == VocabType::kBpe) {
    const auto ids = tok->tokenize("\n", false, false);
    tok->vocab_.nl = ids.empty() ? tok->vocab_.pad : ids[0];
  } else {
    tok->vocab_.nl = tok->vocab_.pad;
  }
  return std::shared_ptr<const Tokenizer>(std::move(tok));
}

Expected<std::shared_ptr<const Tokenizer>> Tokenizer::from_gguf(const gguf::File& file) {
  auto spec = read_vocab_spec(file);
  if (!spec) return Status::error(file.name() + ": " + spec.error_message());
  auto tok = create(*spec);
  if (!tok) return Status::error(file.name() + ": " + tok.error_message());
  return tok;
}

Expected<std::shared_ptr<const Tokenizer>> Tokenizer::open(const std::string& gguf_path) {
  auto file = gguf::File::open(gguf_path);
  if (!file) return file.status();
  return from_gguf(**file);
}

std::vector<int32_t> Tokenizer::tokenize(std::string_view text, bool add_special, bool parse_special) const {
  const Vocab& v = vocab_;
  std::vector<int32_t> out;
  const std::vector<Fragment> fragments = partition(v, text, parse_special);
  switch (v.type) {
    case VocabType::kSpm: {
      if (add_special && v.add_bos) out.push_back(v.bos);
      bool prev_special = true;  // the first text fragment gets the space prefix
      std::string piece;
      for (const Fragment& f : fragments) {
        if (f.token != kNoToken) {
          out.push_back(f.token);
          prev_special = true;
          continue;
        }
        piece.clear();
        if (v.add_space_prefix && prev_special) piece += kSpaceMarker;
        for (char c : text.substr(f.offset, f.length)) {
          if (c == ' ') {
            piece += kSpaceMarker;
          } else {
            piece.push_back(c);
          }
        }
        encode_spm(v, piece, out);
        prev_special = false;
      }
      if (add_special && v.add_eos) out.push_back(v.eos);
      break;
    }
    case VocabType::kBpe:
      if (add_special && v.add_bos) out.push_back(v.bos);
      for (const Fragment& f : fragments) {
        if (f.token != kNoToken) {
          out.push_back(f.token);
        } else {
          encode_bpe(v, text.substr(f.offset, f.length), out);
        }
      }
      if (add_special && v.add_eos) out.push_back(v.eos);
      break;
    case VocabType::kWpm:
      if (add_special && v.bos != kNoToken) out.push_back(v.bos);
      for (const Fragment& f : fragments) {
        if (f.token != kNoToken) {
          out.push_back(f.token);
        } else {
          encode_wpm(v, text.substr(f.offset, f.length), out);
        }
      }
      if (add_special && v.sep != kNoToken) out.push_back(v.sep);
      break;
  }
  return out;
}

std::string Tokenizer::token_to_piece(int32_t id, bool render_special) const {
  if (!is_valid(id)) return "";
  if (!render_special && (vocab_.tokens[id].attr & (kAttrControl | kAttrUnknown))) return "";
  return vocab_.pieces[id];
}

std::string Tokenizer::detokenize(std::span<const int32_t> ids, bool remove_special, bool render_special) const {
  const Vocab& v = vocab_;
  bool remove_space = v.add_space_prefix;
  if (remove_special && v.add_bos && !ids.empty() && ids.front() == v.bos) {
    remove_space = false;
    ids = ids.subspan(1);
  }
  if (remove_special && v.add_eos && !ids.empty() && ids.back() == v.eos) ids = ids.first(ids.size() - 1);

  std::string text;
  for (int32_t id : ids) {
    std::string piece = token_to_piece(id, render_special);
    if (remove_space && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    remove_space = false;
    text += piece;
  }
  if (!v.clean_spaces || text.empty()) return text;

  // " ?" " !" " ." " ,": drop the space.
  std::string a;
  a.push_back(text[0]);
  for (size_t i = 1; i < text.size(); ++i) {
    const char x = text[i];
    if (text[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) a.pop_back();
    a.push_back(x);
  }
  // " ' ": a lone apostrophe between spaces loses both spaces.
  std::string b;
  b.push_back(a[0]);
  for (size_t i = 1; i < a.size(); ++i) {
    const char x = a[i];
    if (x == '\'' && i + 1 < a.size() && a[i - 1] == ' ' && a[i + 1] == ' ') {
      b.pop_back();
      b.push_back(x);
      a[++i] = '\0';  // skip the following space (and let it no longer count as one)
      continue;
    }
    b.push_back(x);
  }
  // " 's" " 'm" " 're" " 've": contractions join the word before.
  std::string c;
  c.push_back(b[0]);
  for (size_t i = 1; i < b.size(); ++i) {
    const char x = b[i];
    if (b[i - 1] == ' ' && x == '\'' && i + 1 < b.size()) {
      const char x1 = b[i + 1];
      const bool join = x1 == 's' || x1 == 'm' ||
                        (i + 2 < b.size() && ((x1 == 'r' && b[i + 2] == 'e') || (x1 == 'v' && b[i + 2] == 'e')));
      if (join) c.pop_back();
    }
    c.push_back(x);
  }
  return c;
}

}  // namespace rf::tokenizer
