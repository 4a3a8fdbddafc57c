// The three segmentation algorithms, on text already split into fragments by the special-token pass.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "tokenizer/vocab.h"

namespace rf::tokenizer {

// SentencePiece-style BPE: starting from single characters, repeatedly joins the adjacent pair whose joined text
// is the token with the highest score (leftmost on ties); leftovers that are not tokens become byte tokens.
// `text` has spaces already replaced by U+2581.
void encode_spm(const Vocab& vocab, std::string_view text, std::vector<int32_t>& out);

// Byte-level BPE over one pre-tokenized word (already mapped to byte characters): applies merges by rank.
void encode_bpe_word(const Vocab& vocab, std::string_view word, std::vector<int32_t>& out);

// BPE over a text fragment: pre-tokenizes, byte-encodes and encodes each word.
void encode_bpe(const Vocab& vocab, std::string_view text, std::vector<int32_t>& out);

// WordPiece: normalizes (lowercase, strip accents), splits on white space and punctuation, then takes the
// longest matching token from each position of every word; a word with no full segmentation becomes UNK.
void encode_wpm(const Vocab& vocab, std::string_view text, std::vector<int32_t>& out);

}  // namespace rf::tokenizer
