#include <algorithm>

#include "tokenizer/encoders.h"
#include "tokenizer/unicode.h"

namespace rf::tokenizer {
namespace {

struct Symbol {
  int prev;
  int next;
  size_t start;  // byte offset in the text
  size_t len;    // 0 once merged into its left neighbour
};

struct Bigram {
  float score;
  int left;
  int right;
  size_t len;  // joined length when queued; stale entries no longer match
};

struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

namespace {

// Runs the merges over symbols[begin, end) (one segment no merge can leave) and appends the resulting ids.
void encode_segment(const Vocab& vocab, std::string_view text, std::vector<Symbol>& symbols, int begin, int end,
                    std::vector<Bigram>& heap, std::vector<int32_t>& out) {
  for (int i = begin; i < end; ++i) {
    symbols[i].prev = i - 1 >= begin ? i - 1 : -1;
    symbols[i].next = i + 1 < end ? i + 1 : -1;
  }
  heap.clear();
  BigramOrder order;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const size_t len = symbols[left].len + symbols[right].len;
    const int32_t id = vocab.find(text.substr(symbols[left].start, len));
    if (id == kNoToken) return;
    heap.push_back({vocab.tokens[id].score, left, right, len});
    std::push_heap(heap.begin(), heap.end(), order);
  };
  for (int i = begin + 1; i < end; ++i) try_add(i - 1, i);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), order);
    const Bigram b = heap.back();
    heap.pop_back();
    Symbol& left = symbols[b.left];
    Symbol& right = symbols[b.right];
    if (left.len == 0 || right.len == 0 || left.len + right.len != b.len) continue;
    left.len += right.len;
    right.len = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = b.left;
    try_add(left.prev, b.left);
    try_add(b.left, left.next);
  }

  for (int i = begin; i != -1; i = symbols[i].next) {
    const Symbol& s = symbols[i];
    const std::string_view piece = text.substr(s.start, s.len);
    const int32_t id = vocab.find(piece);
    if (id != kNoToken) {
      out.push_back(id);
      continue;
    }
    // Every joined symbol is a token, so only single characters get here: emit their bytes.
    for (char c : piece) {
      const int32_t byte_id = vocab.byte_token(static_cast<uint8_t>(c));
      if (byte_id != kNoToken) {
        out.push_back(byte_id);
      } else if (vocab.unk != kNoToken) {
        out.push_back(vocab.unk);
      }
    }
  }
}

}  // namespace

// The merge order is global (score, then position), but merges in stretches that no token can span never
// interact, so the text is cut where two neighbouring characters occur together in no token and each stretch is
// merged on its own: the same result with small heaps.
void encode_spm(const Vocab& vocab, std::string_view text, std::vector<int32_t>& out) {
  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  for (size_t offset = 0; offset < text.size();) {
    const size_t len = std::min(utf8_sequence_length(static_cast<uint8_t>(text[offset])), text.size() - offset);
    symbols.push_back({-1, -1, offset, len});
    offset += len;
  }
  std::vector<Bigram> heap;
  const int n = static_cast<int>(symbols.size());
  int begin = 0;
  for (int i = 1; i <= n; ++i) {
    const bool cut =
        i == n || !vocab.spm_char_pairs.count(pack_char_pair(text.substr(symbols[i - 1].start, symbols[i - 1].len),
                                                             text.substr(symbols[i].start, symbols[i].len)));
    if (!cut) continue;
    encode_segment(vocab, text, symbols, begin, i, heap, out);
    begin = i;
  }
}

}  // namespace rf::tokenizer
