// One scheduling step of the engine: cancellations, admission (with prefix-cache reuse), batch building (decode
// tokens first, then prefill chunks up to the token budget; preemption when the block pool runs dry), and, after
// the forward pass, sampling and bookkeeping. Everything here runs on the scheduler thread under shared_->mu.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/check.h"
#include "runtime/engine_internal.h"
#include "runtime/sample_row.h"

namespace rf::runtime {
namespace {

// Sequences per sampling thread at least: waking a worker is worth it for a couple of vocabulary-sized passes.
constexpr int64_t kSeqsPerSamplingThread = 2;

int32_t blocks_for(int64_t n_tokens, int32_t block_size) {
  return static_cast<int32_t>((n_tokens + block_size - 1) / block_size);
}

}  // namespace

void Engine::release_blocks(Seq& s) {
  for (int32_t b : s.blocks) st_->blocks.release(b);
  s.blocks.clear();
  s.n_computed = 0;
  s.n_registered = 0;
}

void Engine::finish_seq(Seq& s, FinishReason reason, const std::string& error) {
  if (s.done) return;
  release_blocks(s);
  s.done = true;
  if (s.leader && s.group) s.group->prefilled = true;  // siblings must not wait for a leader that left
  s.handle->finish(reason, error);
}

void Engine::reap_cancelled() {
  if (shared_->pending_cancels == 0) return;
  shared_->pending_cancels = 0;
  for (auto& q : st_->running) {
    if (q->handle->cancelled()) finish_seq(*q, FinishReason::kCancelled);
  }
  for (auto& q : st_->waiting) {
    if (q->handle->cancelled()) finish_seq(*q, FinishReason::kCancelled);
  }
  std::erase_if(st_->running, [](const std::unique_ptr<Seq>& q) { return q->done; });
  std::erase_if(st_->waiting, [](const std::unique_ptr<Seq>& q) { return q->done; });
}

void Engine::admit() {
  const int32_t bs = opts_.block_size;
  // Blocks the running sequences still need to finish computing what they hold (prompt or recompute).
  int64_t committed = 0;
  for (const auto& q : st_->running) {
    committed += std::max<int64_t>(
        0, blocks_for(static_cast<int64_t>(q->tokens.size()), bs) - static_cast<int64_t>(q->blocks.size()));
  }
  for (auto it = st_->waiting.begin();
       it != st_->waiting.end() && st_->running.size() < static_cast<size_t>(opts_.max_running);) {
    Seq& s = **it;
    if (!s.leader && !s.group->prefilled) {  // wait for the first choice's prompt, then share its blocks
      ++it;
      continue;
    }
    const auto n = static_cast<int64_t>(s.tokens.size());
    // At least the last token is always computed (its logits pick the next token).
    std::vector<int32_t> matched = st_->blocks.match_prefix(s.tokens, static_cast<int32_t>((n - 1) / bs));
    const int64_t need = blocks_for(n, bs) - static_cast<int64_t>(matched.size());
    if (need + committed > st_->blocks.n_available()) {
      for (int32_t b : matched) st_->blocks.release(b);
      break;  // first come, first served: later requests do not overtake one that does not fit
    }
    committed += need;
    s.blocks = std::move(matched);
    s.n_computed = static_cast<int32_t>(s.blocks.size()) * bs;
    s.n_registered = static_cast<int32_t>(s.blocks.size());
    if (!s.admitted_once) {
      s.admitted_once = true;
      std::lock_guard hl(s.handle->mu_);
      s.handle->cached_tokens_ = s.n_computed;
      st_->stats.prompt_tokens_cached += s.n_computed;
    }
    st_->running.push_back(std::move(*it));
    it = st_->waiting.erase(it);
  }
}

void Engine::preempt(Seq& victim) {
  release_blocks(victim);
  st_->stats.preemptions++;
  auto it = std::find_if(st_->running.begin(), st_->running.end(),
                         [&](const std::unique_ptr<Seq>& q) { return q.get() == &victim; });
  RF_CHECK(it != st_->running.end());
  st_->waiting.push_front(std::move(*it));
  st_->running.erase(it);
}

bool Engine::grow_blocks(Seq& s, int32_t n_tokens, bool may_preempt) {
  const int32_t need = blocks_for(s.n_computed + n_tokens, opts_.block_size);
  while (static_cast<int32_t>(s.blocks.size()) < need) {
    const int32_t b = st_->blocks.allocate();
    if (b >= 0) {
      s.blocks.push_back(b);
      continue;
    }
    if (!may_preempt) return false;
    // Preempt the most recently admitted other sequence; if s is the only one left, it yields itself.
    Seq* victim = st_->running.back().get();
    if (victim == &s) {
      preempt(s);
      return false;
    }
    preempt(*victim);
  }
  return true;
}

bool Engine::build_batch(backend::Batch* batch, std::vector<Seq*>* batch_seqs, std::vector<int32_t>* chunk) {
  int32_t budget = opts_.step_tokens;
  auto add = [&](Seq& s, int32_t n) {
    const auto idx = static_cast<int32_t>(batch_seqs->size());
    for (int32_t i = 0; i < n; ++i) {
      batch->tokens.push_back(s.tokens[static_cast<size_t>(s.n_computed + i)]);
      batch->positions.push_back(s.n_computed + i);
      batch->seq.push_back(idx);
      batch->generated.push_back(s.n_computed + i >= s.n_prompt ? 1 : 0);
    }
    if (s.n_computed + n == static_cast<int32_t>(s.tokens.size())) {
      batch->output_rows.push_back(static_cast<int32_t>(batch->tokens.size()) - 1);
    }
    batch_seqs->push_back(&s);
    chunk->push_back(n);
    budget -= n;
  };
  // Decode tokens first (one per generating sequence), oldest first. Preemption removes sequences from the back.
  for (size_t i = 0; i < st_->running.size() && budget > 0; ++i) {
    Seq& s = *st_->running[i];
    if (s.pending() != 1) continue;
    if (!grow_blocks(s, 1, /*may_preempt=*/true)) break;  // s preempted itself: it was the last one
    add(s, 1);
  }
  // Prefill chunks with what is left of the budget.
  for (size_t i = 0; i < st_->running.size() && budget > 0; ++i) {
    Seq& s = *st_->running[i];
    if (s.pending() <= 1) continue;
    int32_t n = std::min(s.pending(), budget);
    if (!grow_blocks(s, n, /*may_preempt=*/false)) {
      n = static_cast<int32_t>(s.blocks.size()) * opts_.block_size - s.n_computed;  // what the blocks cover
      if (n <= 0) continue;
    }
    add(s, n);
  }
  if (batch_seqs->empty()) return false;
  batch->kv_block_size = opts_.block_size;
  for (Seq* s : *batch_seqs) batch->block_tables.push_back(s->blocks);
  return true;
}

void Engine::register_full_blocks(Seq& s) {
  const int32_t bs = opts_.block_size;
  // A backend whose results depend on a token's kind (Batch::generated) could hand a generated token's K/V to a
  // later prompt that holds the same token (a chat's next turn): only blocks of prompt tokens are offered then.
  const int32_t limit = kind_sensitive_ ? std::min(s.n_computed, s.n_prompt) : s.n_computed;
  while ((s.n_registered + 1) * bs <= limit) {
    const auto idx = static_cast<size_t>(s.n_registered);
    const std::span<const int32_t> toks(s.tokens.data() + idx * static_cast<size_t>(bs), static_cast<size_t>(bs));
    const int32_t b = st_->blocks.register_block(s.blocks, s.n_registered, toks);
    if (b != s.blocks[idx]) {
      st_->blocks.release(s.blocks[idx]);
      s.blocks[idx] = b;
    }
    ++s.n_registered;
  }
}

FinishReason Engine::sample_next(Seq& s, const float* logits) {
  const auto nv = static_cast<size_t>(n_vocab());
  return emit_token(s, s.sampler->sample(std::span<const float>(logits, nv), s.tokens), logits);
}

FinishReason Engine::emit_token(Seq& s, int32_t token, const float* logits) {
  const auto nv = static_cast<size_t>(n_vocab());
  TokenEvent ev;
  ev.token = token;
  const bool stop = !s.params.ignore_eos &&
                    std::find(opts_.stop_tokens.begin(), opts_.stop_tokens.end(), ev.token) != opts_.stop_tokens.end();
  if (stop) return FinishReason::kStop;
  if (s.params.top_logprobs >= 0) {
    RF_CHECK(logits != nullptr);
    const std::span<const float> row(logits, nv);
    const float mx = *std::max_element(row.begin(), row.end());
    double sum = 0.0;
    for (float v : row) sum += std::exp(static_cast<double>(v - mx));
    const float lse = mx + static_cast<float>(std::log(sum));
    ev.logprob = row[static_cast<size_t>(ev.token)] - lse;
    const auto k = std::min(static_cast<size_t>(s.params.top_logprobs), nv);
    std::vector<int32_t> ids(nv);
    std::iota(ids.begin(), ids.end(), 0);
    std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end(), [&](int32_t a, int32_t b) {
      return row[static_cast<size_t>(a)] > row[static_cast<size_t>(b)] ||
             (row[static_cast<size_t>(a)] == row[static_cast<size_t>(b)] && a < b);
    });
    for (size_t i = 0; i < k; ++i) ev.top.emplace_back(ids[i], row[static_cast<size_t>(ids[i])] - lse);
  }
  s.tokens.push_back(ev.token);
  ++s.n_generated;
  s.handle->push(std::move(ev));
  if (s.n_generated >= s.params.max_tokens || static_cast<int32_t>(s.tokens.size()) >= opts_.ctx_size) {
    return FinishReason::kLength;
  }
  return FinishReason::kNone;
}

Status Engine::after_forward(const std::vector<Seq*>& batch_seqs, const std::vector<int32_t>& chunk,
                             std::vector<float>& logits) {
  const auto nv = static_cast<size_t>(n_vocab());
  std::vector<std::pair<Seq*, int32_t>>& todo = st_->sample_todo;
  todo.clear();
  int32_t out = 0;
  for (size_t i = 0; i < batch_seqs.size(); ++i) {
    Seq& s = *batch_seqs[i];
    const bool has_output = s.n_computed + chunk[i] == static_cast<int32_t>(s.tokens.size());
    const int32_t row = has_output ? out++ : -1;
    if (s.done) continue;
    if (s.n_computed < s.n_prompt) {
      st_->stats.prompt_tokens_computed += std::min(chunk[i], s.n_prompt - s.n_computed);
    }
    s.n_computed += chunk[i];
    register_full_blocks(s);
    if (!has_output || s.handle->cancelled()) continue;
    if (s.leader) s.group->prefilled = true;
    todo.emplace_back(&s, row);
  }
  // Sequences that want logprobs need their logits row on the host; the backend samples the others, so only their
  // token ids cross (a backend without a device sampler downloads them and calls back into sample_host).
  std::vector<int64_t>& host_row = st_->sample_host_row;
  std::vector<backend::SampleRow>& rows = st_->sample_rows;
  std::vector<size_t>& row_todo = st_->sample_row_todo;
  std::vector<int32_t>& ids = st_->sample_ids;
  host_row.assign(todo.size(), -1);
  rows.clear();
  row_todo.clear();
  int64_t n_host = 0;
  for (size_t k = 0; k < todo.size(); ++k) {
    Seq& s = *todo[k].first;
    if (s.params.top_logprobs >= 0) {
      host_row[k] = n_host++;
    } else {
      rows.push_back(sample_row(*s.sampler, s.tokens, todo[k].second));
      row_todo.push_back(k);
    }
  }
  logits.resize(static_cast<size_t>(n_host) * nv);
  Status st;
  for (size_t k = 0; k < todo.size() && st.ok(); ++k) {
    if (host_row[k] >= 0) st = model_.logits_row(todo[k].second, logits.data() + static_cast<size_t>(host_row[k]) * nv);
  }
  ids.assign(rows.size(), 0);
  const backend::HostSampleFn sample_host = [&](std::span<const size_t> which, const float* lg, int32_t* out_ids) {
    const auto n = static_cast<int64_t>(which.size());
    st_->workers->run(n, static_cast<int>(n / kSeqsPerSamplingThread) - 1, [&](int64_t j) {
      const size_t i = which[static_cast<size_t>(j)];
      Seq& s = *todo[row_todo[i]].first;
      out_ids[i] = s.sampler->sample_drawn(std::span<const float>(lg + static_cast<size_t>(j) * nv, nv), s.tokens,
                                           rows[i].u);
    });
  };
  if (st.ok() && !rows.empty()) st = model_.sample(rows, sample_host, ids.data());
  if (!st.ok()) {
    // A lost device fails every running sequence alike (recover_device, after this returns), these included.
    if (model_.device_lost()) return st;
    for (auto& [s, row] : todo) finish_seq(*s, FinishReason::kError, "sampling failed: " + st.message());
    return st;
  }
  // Handing the tokens to the consumers (and the host rows' sampling, a pass or more over the vocabulary each)
  // touch only the sequence itself (its sampler, RNG, tokens and handle), so sequences run on several threads;
  // the tokens do not depend on the split. Finishing (which frees blocks) stays on this thread.
  std::vector<int64_t>& id_of = st_->sample_id_of;
  id_of.assign(todo.size(), -1);
  for (size_t r = 0; r < rows.size(); ++r) id_of[row_todo[r]] = static_cast<int64_t>(r);
  std::vector<FinishReason>& fin = st_->sample_finish;
  fin.assign(todo.size(), FinishReason::kNone);
  const auto n = static_cast<int64_t>(todo.size());
  st_->workers->run(n, static_cast<int>(n / kSeqsPerSamplingThread) - 1, [&](int64_t i) {
    const auto k = static_cast<size_t>(i);
    Seq& s = *todo[k].first;
    fin[k] = host_row[k] >= 0 ? sample_next(s, logits.data() + static_cast<size_t>(host_row[k]) * nv)
                              : emit_token(s, ids[static_cast<size_t>(id_of[k])], nullptr);
  });
  for (size_t k = 0; k < todo.size(); ++k) {
    if (fin[k] != FinishReason::kNone) finish_seq(*todo[k].first, fin[k]);
  }
  return ok_status();
}

}  // namespace rf::runtime
