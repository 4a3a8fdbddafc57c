#include "runtime/engine.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "core/check.h"
#include "core/parallel.h"
#include "runtime/engine_internal.h"

namespace rf::runtime {
namespace {

constexpr int kMaxSamplingWorkers = 15;  // besides the scheduler thread

}  // namespace

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kShutdown:
      return "shutdown";
    case FinishReason::kError:
      return "error";
    case FinishReason::kNone:
      break;
  }
  return "";
}

// --- SequenceHandle ----------------------------------------------------------------------------------------------

bool SequenceHandle::next(SequenceUpdate* out, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  auto news = [&] { return !pending_.empty() || (finish_ != FinishReason::kNone && !finish_delivered_); };
  if (!cv_.wait_for(lock, timeout, news)) return false;
  for (auto& ev : pending_) out->tokens.push_back(std::move(ev));
  pending_.clear();
  out->prompt_tokens = prompt_tokens_;
  out->cached_prompt_tokens = cached_tokens_;
  if (finish_ != FinishReason::kNone) {
    out->finish = finish_;
    out->error = error_;
    finish_delivered_ = true;
  }
  return true;
}

void SequenceHandle::cancel() {
  if (cancelled_.exchange(true)) return;
  std::lock_guard lock(shared_->mu);
  ++shared_->pending_cancels;
  shared_->cv.notify_all();
}

void SequenceHandle::push(TokenEvent ev) {
  std::lock_guard lock(mu_);
  pending_.push_back(std::move(ev));
  cv_.notify_all();
}

void SequenceHandle::finish(FinishReason reason, std::string error) {
  std::lock_guard lock(mu_);
  if (finish_ != FinishReason::kNone) return;
  finish_ = reason;
  error_ = std::move(error);
  cv_.notify_all();
}

// --- Engine ------------------------------------------------------------------------------------------------------

Engine::Engine(model::Model& model, const EngineOptions& options)
    : model_(model),
      opts_(options),
      kind_sensitive_(model.results_depend_on_kind()),
      shared_(std::make_shared<EngineShared>()) {}

Expected<std::unique_ptr<Engine>> Engine::create(model::Model& model, const EngineOptions& options) {
  EngineOptions o = options;
  if (o.max_running <= 0)
    return Status::error("engine: --parallel must be positive, got " + std::to_string(o.max_running));
  if (o.block_size <= 0)
    return Status::error("engine: block size must be positive, got " + std::to_string(o.block_size));
  if (o.ctx_size <= 0) o.ctx_size = model.hparams().n_ctx_train > 0 ? model.hparams().n_ctx_train : 4096;
  if (o.ctx_size < 2)
    return Status::error("engine: context size must be at least 2, got " + std::to_string(o.ctx_size));
  if (o.kv_slots <= 0) o.kv_slots = o.ctx_size * o.max_running;
  if (o.kv_slots < o.ctx_size) {
    return Status::error("engine: the KV cache holds " + std::to_string(o.kv_slots) +
                         " tokens, fewer than one sequence's context of " + std::to_string(o.ctx_size));
  }
  o.step_tokens = std::max(o.step_tokens, o.max_running);
  if (o.max_waiting < 0) o.max_waiting = 0;

  std::unique_ptr<Engine> e(new Engine(model, o));
  auto cache = e->make_cache();
  if (!cache) return cache.status();
  e->cache_ = std::move(*cache);
  e->st_ = std::make_unique<State>(e->cache_->n_blocks(), o.block_size, o.prefix_cache);
  e->st_->stats.kv_blocks_total = e->cache_->n_blocks();
  e->st_->workers = std::make_unique<WorkerPool>(std::min(rf::hardware_threads() - 1, kMaxSamplingWorkers));
  e->thread_ = std::thread([p = e.get()] { p->loop(); });
  return e;
}

Expected<std::unique_ptr<kv::KvCache>> Engine::make_cache() const {
  kv::KvOptions kvo;
  kvo.n_slots = opts_.kv_slots;
  kvo.block_size = opts_.block_size;
  kvo.type = opts_.kv_type;
  return kv::KvCache::create(model_.backend(), model_.kv_shape(), kvo);
}

Engine::~Engine() { shutdown(std::chrono::milliseconds(0)); }

int32_t Engine::n_vocab() const { return model_.hparams().n_vocab; }

SubmitResult Engine::submit(std::vector<SequenceParams> group) {
  SubmitResult r;
  auto invalid = [&](std::string msg) {
    r.error = SubmitError::kInvalid;
    r.message = std::move(msg);
    return r;
  };
  if (group.empty()) return invalid("engine: empty request");
  const int32_t vocab = n_vocab();
  for (const auto& p : group) {
    if (p.prompt.empty()) return invalid("the prompt is empty (no tokens)");
    for (size_t i = 0; i < p.prompt.size(); ++i) {
      if (p.prompt[i] < 0 || p.prompt[i] >= vocab) {
        return invalid("prompt token " + std::to_string(i) + " is " + std::to_string(p.prompt[i]) +
                       ", outside the vocabulary [0, " + std::to_string(vocab) + ")");
      }
    }
    if (static_cast<int64_t>(p.prompt.size()) >= opts_.ctx_size) {
      return invalid("the prompt has " + std::to_string(p.prompt.size()) + " tokens but the context holds " +
                     std::to_string(opts_.ctx_size) + " (prompt plus at least one generated token)");
    }
    if (p.max_tokens < 1) return invalid("max_tokens must be at least 1, got " + std::to_string(p.max_tokens));
  }
  std::lock_guard lock(shared_->mu);
  if (!shared_->accepting || shared_->stop) {
    r.error = SubmitError::kShuttingDown;
    r.message = "the server is shutting down";
    return r;
  }
  // A request is queued when the queue has room for it (an oversized group only into an empty queue).
  if (!st_->waiting.empty() && st_->waiting.size() + group.size() > static_cast<size_t>(opts_.max_waiting)) {
    r.error = SubmitError::kOverloaded;
    r.message = "the request queue is full (" + std::to_string(st_->waiting.size()) + " sequences waiting, limit " +
                std::to_string(opts_.max_waiting) + "); retry later";
    return r;
  }
  auto g = std::make_shared<Group>();
  g->prefilled = group.size() == 1;
  for (size_t i = 0; i < group.size(); ++i) {
    auto s = std::make_unique<Seq>();
    s->id = st_->next_id++;
    s->handle = std::make_shared<SequenceHandle>(shared_);
    s->params = std::move(group[i]);
    s->tokens = s->params.prompt;
    s->n_prompt = static_cast<int32_t>(s->tokens.size());
    s->sampler = std::make_unique<sampling::Sampler>(s->params.sampler);
    s->group = g;
    s->leader = i == 0;
    s->handle->prompt_tokens_ = s->n_prompt;
    r.handles.push_back(s->handle);
    st_->waiting.push_back(std::move(s));
  }
  shared_->cv.notify_all();
  return r;
}

void Engine::shutdown(std::chrono::milliseconds grace) {
  {
    std::unique_lock lock(shared_->mu);
    shared_->accepting = false;
    if (grace.count() > 0) {
      shared_->idle_cv.wait_for(lock, grace, [&] { return st_->running.empty() && st_->waiting.empty(); });
    }
    shared_->stop = true;
    shared_->cv.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

EngineStats Engine::stats() const {
  std::lock_guard lock(shared_->mu);
  EngineStats s = st_->stats;
  s.waiting = static_cast<int64_t>(st_->waiting.size());
  s.running = static_cast<int64_t>(st_->running.size());
  s.kv_blocks_used = st_->blocks.n_referenced();
  s.kv_blocks_cached = st_->blocks.n_cached_idle();
  s.device_unusable = !st_->unusable.ok();
  return s;
}

void Engine::loop() {
  // The logits rows a step downloads (sequences that want logprobs), reused: a fresh vector per step costs an
  // allocation and a page fault per 4 KiB before the backend can write it.
  std::vector<float> logits;
  std::unique_lock lock(shared_->mu);
  while (true) {
    shared_->cv.wait(lock, [&] {
      return shared_->stop || shared_->pending_cancels > 0 || !st_->running.empty() || !st_->waiting.empty();
    });
    if (shared_->stop) break;
    const auto t_schedule = std::chrono::steady_clock::now();
    reap_cancelled();
    if (!st_->unusable.ok()) {  // the device is gone for good: every request says so
      for (auto& q : st_->waiting) finish_seq(*q, FinishReason::kError, st_->unusable.message());
      st_->waiting.clear();
      shared_->idle_cv.notify_all();
      continue;
    }
    admit();
    backend::Batch batch;
    std::vector<Seq*> batch_seqs;
    std::vector<int32_t> chunk;
    if (!build_batch(&batch, &batch_seqs, &chunk)) {
      if (st_->running.empty() && st_->waiting.empty()) shared_->idle_cv.notify_all();
      // Nothing can run now (queued work waits for blocks or a sibling's prefill): wait for a change.
      if (!st_->running.empty() || !st_->waiting.empty()) shared_->cv.wait_for(lock, std::chrono::milliseconds(20));
      continue;
    }
    st_->stats.steps++;
    st_->stats.max_batch_tokens = std::max<int64_t>(st_->stats.max_batch_tokens, batch.n_tokens());
    st_->stats.max_batch_sequences =
        std::max<int64_t>(st_->stats.max_batch_sequences, static_cast<int64_t>(batch_seqs.size()));
    const auto t_forward = std::chrono::steady_clock::now();
    lock.unlock();
    const Status s = model_.forward(std::move(batch), *cache_, nullptr);  // the logits stay on the backend
    lock.lock();
    const auto t_after = std::chrono::steady_clock::now();
    Status failed = s;
    if (s.ok()) {
      failed = after_forward(batch_seqs, chunk, logits);
    } else if (!model_.device_lost()) {
      // The batch's sequences fail (their K/V rows of this pass are undefined) and free their blocks; the others,
      // and new requests, go on with the next step.
      for (Seq* q : batch_seqs) finish_seq(*q, FinishReason::kError, "the model's forward pass failed: " + s.message());
    }
    if (!failed.ok() && model_.device_lost()) recover_device(lock, failed, s.ok());
    std::erase_if(st_->running, [](const std::unique_ptr<Seq>& q) { return q->done; });
    const auto seconds = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
    st_->stats.schedule_seconds += seconds(t_schedule, t_forward);
    st_->stats.forward_seconds += seconds(t_forward, t_after);
    st_->stats.after_seconds += seconds(t_after, std::chrono::steady_clock::now());
    if (st_->running.empty() && st_->waiting.empty()) shared_->idle_cv.notify_all();
  }
  // Sequences a consumer cancelled meanwhile still finish as cancelled; the others were cut by the shutdown.
  auto end_all = [&](auto& seqs) {
    for (auto& q : seqs) {
      finish_seq(*q, q->handle->cancelled() ? FinishReason::kCancelled : FinishReason::kShutdown);
    }
  };
  end_all(st_->running);
  end_all(st_->waiting);
  st_->running.clear();
  st_->waiting.clear();
  shared_->idle_cv.notify_all();
}

void Engine::recover_device(std::unique_lock<std::mutex>& lock, const Status& cause, bool in_sampling) {
  // The K/V of every running sequence lived on the lost device (the batch's and the others'): they all fail. Queued
  // sequences hold no K/V (a preempted one recomputes from its tokens) and stay queued.
  const std::string why = std::string(in_sampling ? "sampling" : "the model's forward pass") +
                          " failed and the device lost this request's state: " + cause.message() +
                          "; the device is being reset, retry the request";
  for (auto& q : st_->running) finish_seq(*q, FinishReason::kError, why);
  st_->running.clear();
  // The prefix cache's blocks are gone with the device: a fresh block manager (every block is free now).
  st_->blocks = BlockManager(st_->blocks.n_blocks(), opts_.block_size, opts_.prefix_cache);
  std::fprintf(stderr, "rocmforge: device lost (%s); resetting it and reloading the model\n", cause.message().c_str());
  std::fflush(stderr);
  // Reloading the weights takes long: submit(), cancel() and stats() go on meanwhile. Only this thread touches the
  // model and the cache.
  lock.unlock();
  const auto t0 = std::chrono::steady_clock::now();
  cache_.reset();  // its device buffers belong to the lost context and free nothing
  Status st = model_.recover();
  if (st.ok()) {
    auto cache = make_cache();
    if (cache) {
      cache_ = std::move(*cache);
    } else {
      st = Status::error("engine: a new KV cache after the device reset: " + cache.error_message());
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  lock.lock();
  if (st.ok() && !model_.fallback_reason().empty()) {
    st_->stats.device_fallback = true;
    std::fprintf(stderr,
                 "rocmforge: %s; the model moved to %s in %.1f s: serving again, slower (restart the process "
                 "to use the GPU again)\n",
                 model_.fallback_reason().c_str(), model_.placement_summary().c_str(), seconds);
  } else if (st.ok()) {
    st_->stats.device_recoveries++;
    std::fprintf(stderr, "rocmforge: device reset and model reloaded in %.1f s; serving again\n", seconds);
  } else {
    st_->unusable = Status::error("the device was lost and could not be recovered, this server cannot run the model "
                                  "any more (restart it): " + st.message());
    std::fprintf(stderr, "rocmforge: %s\n", st_->unusable.message().c_str());
  }
  std::fflush(stderr);
}

}  // namespace rf::runtime
