#include <algorithm>
#include <queue>
#include <string>
#include <unordered_map>
#include <utility>

#include "tokenizer/encoders.h"
#include "tokenizer/unicode.h"

namespace rf::tokenizer {
namespace {

struct Symbol {
  int prev;
  int next;
  size_t start;
  size_t len;  // 0 once merged into its left neighbour
};

struct Bigram {
  int32_t rank;
  int left;
  int right;
  size_t left_len;  // lengths when queued: a pair whose sides changed since is stale
  size_t right_len;
};

struct BigramOrder {  // lowest rank first, then leftmost
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

}  // namespace

void encode_bpe_word(const Vocab& vocab, std::string_view word, std::vector<int32_t>& out) {
  if (word.empty()) return;
  if (vocab.ignore_merges) {
    if (const int32_t id = vocab.find(word); id != kNoToken) {
      out.push_back(id);
      return;
    }
  }
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  for (size_t offset = 0; offset < word.size();) {
    const size_t len = std::min(utf8_sequence_length(static_cast<uint8_t>(word[offset])), word.size() - offset);
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({index - 1, offset + len == word.size() ? -1 : index + 1, offset, len});
    offset += len;
  }

  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  std::string key;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols[left];
    const Symbol& r = symbols[right];
    key.assign(word.substr(l.start, l.len));
    key.push_back(' ');
    key.append(word.substr(r.start, r.len));
    auto it = vocab.merge_ranks.find(std::string_view(key));
    if (it == vocab.merge_ranks.end()) return;
    queue.push({it->second, left, right, l.len, r.len});
  };
  for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& left = symbols[b.left];
    Symbol& right = symbols[b.right];
    if (left.len != b.left_len || right.len != b.right_len || left.len == 0 || right.len == 0) continue;
    left.len += right.len;
    right.len = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = b.left;
    try_add(left.prev, b.left);
    try_add(b.left, left.next);
  }

  for (int i = 0; i != -1; i = symbols[i].next) {
    const std::string_view piece = word.substr(symbols[i].start, symbols[i].len);
    const int32_t id = vocab.find(piece);
    if (id != kNoToken) {
      out.push_back(id);
      continue;
    }
    // Not a token: fall back to single-byte tokens where the vocabulary has them (the reference drops the rest).
    for (char c : piece) {
      const int32_t byte_id = vocab.find(std::string_view(&c, 1));
      if (byte_id != kNoToken) out.push_back(byte_id);
    }
  }
}

void encode_bpe(const Vocab& vocab, std::string_view text, std::vector<int32_t>& out) {
  const std::vector<uint32_t> cps = decode_utf8(text);
  const std::vector<size_t> lengths = vocab.pre_tokenizer->split_lengths(cps);
  std::string word;
  std::string encoded;
  // Words repeat a lot in real text: remember each distinct word's ids for this fragment.
  std::unordered_map<std::string, std::pair<size_t, size_t>> seen;  // word -> [begin, end) in out
  size_t start = 0;
  for (size_t len : lengths) {
    word.clear();
    for (size_t i = start; i < start + len; ++i) append_utf8(word, cps[i]);
    start += len;
    if (auto it = seen.find(word); it != seen.end()) {
      for (size_t k = it->second.first; k < it->second.second; ++k) out.push_back(out[k]);
      continue;
    }
    encoded.clear();
    for (char c : word) encoded += byte_to_bpe_char(static_cast<uint8_t>(c));
    const size_t begin = out.size();
    encode_bpe_word(vocab, encoded, out);
    seen.emplace(word, std::make_pair(begin, out.size()));
  }
}

}  // namespace rf::tokenizer
