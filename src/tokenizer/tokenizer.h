// Tokenizer built from a GGUF vocabulary (tokenizer.ggml.*), producing the same ids and text as the reference
// engine (llama.cpp): SentencePiece-style BPE ("llama"), byte-level BPE ("gpt2") with its pre-tokenizer variants,
// and WordPiece ("bert"). Thread-safe: all methods are const.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "tokenizer/vocab.h"

namespace rf::tokenizer {

class Tokenizer {
 public:
  static Expected<std::shared_ptr<const Tokenizer>> create(const VocabSpec& spec);
  static Expected<std::shared_ptr<const Tokenizer>> from_gguf(const gguf::File& file);
  static Expected<std::shared_ptr<const Tokenizer>> open(const std::string& gguf_path);

  // add_special: add BOS/EOS (SEP/CLS for WordPiece) as the vocabulary's add_* flags say.
  // parse_special: text of control tokens (e.g. "<|im_start|>") becomes those tokens; user-defined tokens are
  // always matched in text.
  std::vector<int32_t> tokenize(std::string_view text, bool add_special, bool parse_special) const;

  // Text of one token. Control and unknown tokens give "" unless render_special.
  std::string token_to_piece(int32_t id, bool render_special = false) const;

  // Text of a sequence: drops the leading space a SentencePiece prefix added, and (remove_special) a leading
  // BOS / trailing EOS the flags would have added; tidies spaces before punctuation where the vocabulary says so.
  std::string detokenize(std::span<const int32_t> ids, bool remove_special = false, bool render_special = false) const;

  const Vocab& vocab() const { return vocab_; }
  VocabType type() const { return vocab_.type; }
  int32_t n_tokens() const { return vocab_.n_tokens(); }
  int32_t bos() const { return vocab_.bos; }
  int32_t eos() const { return vocab_.eos; }
  int32_t eot() const { return vocab_.eot; }
  int32_t unk() const { return vocab_.unk; }
  int32_t pad() const { return vocab_.pad; }
  int32_t sep() const { return vocab_.sep; }
  int32_t nl() const { return vocab_.nl; }
  bool add_bos() const { return vocab_.add_bos; }
  bool add_eos() const { return vocab_.add_eos; }
  bool is_eog(int32_t id) const { return vocab_.eog.count(id) != 0; }
  bool is_valid(int32_t id) const { return id >= 0 && id < vocab_.n_tokens(); }
  uint32_t attr(int32_t id) const { return vocab_.tokens.at(static_cast<size_t>(id)).attr; }
  const std::string& token_text(int32_t id) const { return vocab_.tokens.at(static_cast<size_t>(id)).text; }
  int32_t find_token(std::string_view text) const { return vocab_.find(text); }

 private:
  explicit Tokenizer(Vocab vocab) : vocab_(std::move(vocab)) {}
  Vocab vocab_;
};

// Turns a token stream into text that never ends inside a UTF-8 character: bytes of a character split across
// tokens (byte tokens, byte-level BPE) are held until the character is complete. Invalid sequences come out as
// U+FFFD. Not thread-safe (one per sequence).
class StreamDecoder {
 public:
  explicit StreamDecoder(std::shared_ptr<const Tokenizer> tokenizer, bool render_special = false);

  // Text that became complete with this token (may be empty).
  std::string push(int32_t id);
  // Whatever is still held (an incomplete character comes out as U+FFFD); resets the decoder.
  std::string flush();
  // Feeds raw bytes (what push() does with a token's piece).
  std::string push_bytes(std::string_view bytes);

 private:
  std::shared_ptr<const Tokenizer> tokenizer_;
  bool render_special_;
  std::string pending_;
};

}  // namespace rf::tokenizer
