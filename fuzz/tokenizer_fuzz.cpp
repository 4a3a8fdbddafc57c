// libFuzzer target: tokenizes arbitrary bytes (invalid UTF-8 included) with SentencePiece, byte-level BPE and
// WordPiece vocabularies, detokenizes the ids, streams them through StreamDecoder, and checks what must hold:
//   - every id is in range; add_special puts BOS/EOS (CLS/SEP) where the vocabulary's flags say;
//   - the stream decoder's output is valid UTF-8, and equals the pieces' bytes whenever those are valid UTF-8;
//   - lossless vocabularies reproduce valid UTF-8 text: the pieces of byte-level BPE ids concatenate to the input
//     (detokenize too, unless the vocabulary tidies spaces), and SentencePiece ids of normal/byte tokens
//     detokenize to the input (text holding U+2581 aside, which SentencePiece cannot tell from a space);
//   - detokenize's space tidying only ever removes characters.
// First input byte: bit 0 add_special, bit 1 parse_special, bit 2 treat the rest as raw token ids instead of text,
// bits 3-7 pick the vocabulary. The built-in vocabularies (tokenizer_vocabs.h) are always there; real ones from
// ../shared/tokenizer are added when that folder exists.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_vocabs.h"

namespace {

using rf::fuzz::check;
using rf::fuzz::is_valid_utf8;
using namespace rf::tokenizer;

struct Subject {
  std::string name;
  std::shared_ptr<const Tokenizer> tok;
  bool lossless = false;  // every byte has a token and (BPE) every merge forms a token
};

std::vector<Subject>* g_subjects = nullptr;

bool every_byte_has_token(const Tokenizer& t) {
  for (int b = 0; b < 256; ++b) {
    const int32_t id = t.vocab().byte_token(static_cast<uint8_t>(b));
    if (id == kNoToken || (t.attr(id) & (kAttrNormal | kAttrByte)) == 0) return false;
  }
  return true;
}

bool merges_form_tokens(const Tokenizer& t) {
  for (const auto& [merge, rank] : t.vocab().merge_ranks) {
    const size_t space = merge.find(' ', 1);
    const int32_t id = t.find_token(merge.substr(0, space) + merge.substr(space + 1));
    if (id == kNoToken || (t.attr(id) & kAttrNormal) == 0) return false;
  }
  return true;
}

void add_subject(std::string name, std::shared_ptr<const Tokenizer> tok) {
  Subject s{std::move(name), std::move(tok), false};
  if (s.tok->type() == VocabType::kSpm) s.lossless = every_byte_has_token(*s.tok);
  if (s.tok->type() == VocabType::kBpe) s.lossless = every_byte_has_token(*s.tok) && merges_form_tokens(*s.tok);
  g_subjects->push_back(std::move(s));
}

// The concatenated pieces, and the stream decoder's output over the same ids.
void check_stream(const Subject& s, std::span<const int32_t> ids, bool render_special) {
  StreamDecoder decoder(s.tok, render_special);
  std::string pieces, streamed;
  for (int32_t id : ids) {
    pieces += s.tok->token_to_piece(id, render_special);
    streamed += decoder.push(id);
  }
  streamed += decoder.flush();
  check(is_valid_utf8(streamed));
  if (is_valid_utf8(pieces)) check(streamed == pieces);
  check(decoder.flush().empty());  // flush resets
}

bool strips_space(const Tokenizer& t, int32_t id) { return (t.attr(id) & (kAttrLstrip | kAttrRstrip)) != 0; }

void check_text(const Subject& s, std::string_view text, bool add_special, bool parse_special) {
  const Tokenizer& t = *s.tok;
  const std::vector<int32_t> ids = t.tokenize(text, add_special, parse_special);
  for (int32_t id : ids) check(t.is_valid(id));

  // The ids of the text itself, without the BOS/EOS (CLS/SEP) that add_special added.
  std::span<const int32_t> body(ids);
  if (add_special) {
    const bool wpm = t.type() == VocabType::kWpm;
    const bool leading = wpm ? t.bos() != kNoToken : t.add_bos();
    const bool trailing = wpm ? t.sep() != kNoToken : t.add_eos();
    const int32_t first = t.bos(), last = wpm ? t.sep() : t.eos();
    if (leading) {
      check(!body.empty() && body.front() == first);
      body = body.subspan(1);
    }
    if (trailing) {
      check(!body.empty() && body.back() == last);
      body = body.first(body.size() - 1);
    }
  }
  if (text.empty()) check(body.empty());

  check_stream(s, ids, true);
  check_stream(s, ids, false);
  for (bool remove_special : {false, true}) {
    for (bool render_special : {false, true}) {
      std::string pieces;
      for (int32_t id : ids) pieces += t.token_to_piece(id, render_special);
      const std::string detok = t.detokenize(ids, remove_special, render_special);
      check(detok.size() <= pieces.size());  // leading-space removal and space tidying only drop bytes
    }
  }

  if (!s.lossless || !is_valid_utf8(text)) return;
  if (t.type() == VocabType::kBpe) {
    std::string pieces;
    bool strips = false;
    for (int32_t id : body) {
      pieces += t.token_to_piece(id, true);
      strips = strips || strips_space(t, id);
    }
    if (strips) return;  // lstrip/rstrip tokens swallow white space by design
    check(pieces == text);
    if (!t.vocab().clean_spaces) check(t.detokenize(body, false, true) == text);
  } else if (t.type() == VocabType::kSpm) {
    if (text.find("\xE2\x96\x81") != std::string_view::npos) return;
    for (int32_t id : body) {
      // A special token in the text gives the next stretch its own space prefix; unused/undefined tokens render
      // as nothing. Both as the reference does: only plain text round-trips.
      if ((t.attr(id) & (kAttrNormal | kAttrByte)) == 0) return;
    }
    check(t.detokenize(body) == text);
  }
}

// Arbitrary (also invalid) ids through detokenize and the stream decoder.
void check_ids(const Subject& s, const uint8_t* data, size_t size, bool remove_special, bool render_special) {
  const Tokenizer& t = *s.tok;
  std::vector<int32_t> ids;
  const int64_t n = t.n_tokens();
  for (size_t i = 0; i + 2 <= size; i += 2) {
    const int64_t raw = static_cast<int64_t>(data[i]) | static_cast<int64_t>(data[i + 1]) << 8;
    // Mostly valid ids, with an occasional one just outside the vocabulary on either side.
    ids.push_back(static_cast<int32_t>(raw % (n + 2) - 1));
  }
  check_stream(s, ids, render_special);
  std::string pieces;
  for (int32_t id : ids) pieces += t.token_to_piece(id, render_special);
  check(t.detokenize(ids, remove_special, render_special).size() <= pieces.size());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_subjects = new std::vector<Subject>();
  for (auto& named : rf::fuzz::builtin_tokenizers()) add_subject(named.name, named.tokenizer);
  if (auto dir = rf::fuzz::shared_dir()) {
    for (const char* file : {"ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf", "ggml-vocab-qwen2.gguf",
                             "ggml-vocab-phi-3.gguf", "ggml-vocab-bert-bge.gguf", "ggml-vocab-llama-bpe.gguf"}) {
      const std::string path = (*dir / "tokenizer" / file).string();
      auto tok = Tokenizer::open(path);
      if (tok.ok()) {
        add_subject(file, *tok);
      } else {
        std::fprintf(stderr, "tokenizer_fuzz: skipping %s: %s\n", path.c_str(), tok.error_message().c_str());
      }
    }
  }
  std::fprintf(stderr, "tokenizer_fuzz: %zu vocabularies:", g_subjects->size());
  for (const auto& s : *g_subjects) std::fprintf(stderr, " %s%s", s.name.c_str(), s.lossless ? "(lossless)" : "");
  std::fprintf(stderr, "\n");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  const Subject& s = (*g_subjects)[(mode >> 3) % g_subjects->size()];
  const bool flag_a = mode & 1, flag_b = mode & 2;
  if (mode & 4) {
    check_ids(s, data + 1, size - 1, flag_a, flag_b);
  } else {
    check_text(s, std::string_view(reinterpret_cast<const char*>(data + 1), size - 1), flag_a, flag_b);
  }
  return 0;
}
