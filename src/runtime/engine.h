// The serving engine: continuous batching over one model and one paged KV cache.
//
// A scheduler thread runs steps. Each step builds ONE backend::Batch from the running sequences: one decode token
// for every sequence that is generating, then chunks of pending prompt tokens (prefill) up to the step's token
// budget, so new requests join without waiting for others to finish and a long prompt never stalls running
// streams. KV blocks come from one pool (BlockManager); full blocks are shared between sequences with the same
// prompt prefix (prefix cache). When the pool runs dry, waiting requests queue, and a running sequence may be
// preempted (its blocks freed; it is recomputed later, invisibly to its consumer).
//
// Every sequence samples with its own params and seed. The per-token math of the forward pass does not depend on
// which other tokens share the batch (row-wise matmul, per-token attention), so results do not depend on load.
//
// Device loss: when a forward pass fails because a backend lost its device (a GPU kernel fault: every later call
// on that context fails), every sequence in flight fails with kError (their K/V lived there) and the prefix cache
// is emptied; the scheduler thread then has the model reset the device and reload its weights (Model::recover),
// makes a new KV cache, and goes on with the queued and new requests. When the device cannot be brought back,
// every request from then on fails with kError saying so.
//
// Consumers talk to a sequence through a SequenceHandle: they pull token events as they come and may cancel, which
// frees the sequence's blocks at the next step boundary.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "kv/kv_cache.h"
#include "model/model.h"
#include "sampling/sampler.h"

namespace rf::runtime {

struct EngineOptions {
  int32_t max_running = 8;    // sequences admitted at once (--parallel)
  int32_t ctx_size = 0;       // per-sequence token limit (prompt + generated); 0: the model's context length
  int32_t kv_slots = 0;       // KV-cache token slots in all; 0: ctx_size * max_running
  int32_t block_size = 16;    // tokens per KV block
  int32_t step_tokens = 256;  // token budget of one batch (decode tokens + prefill chunks)
  int32_t max_waiting = 256;  // queued sequences beyond which submit() reports overload
  bool prefix_cache = true;
  quant::Type kv_type = quant::Type::F16;
  std::vector<int32_t> stop_tokens;  // end-of-generation tokens (EOS/EOT): finish with kStop, not emitted
};

struct SequenceParams {
  std::vector<int32_t> prompt;
  sampling::SamplerParams sampler;
  int32_t max_tokens = 128;   // generated tokens at most (also bounded by the context)
  int32_t top_logprobs = -1;  // < 0: no logprobs; else the chosen token's logprob and this many alternatives
  bool ignore_eos = false;
};

// kCancelled: the consumer cancelled it; kShutdown: the engine stopped (shutdown) before it finished; kError: the
// forward pass of a batch it was in failed, or the device lost its state (SequenceUpdate::error says why).
enum class FinishReason { kNone, kStop, kLength, kCancelled, kShutdown, kError };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "cancelled", "shutdown", "error"

struct TokenEvent {
  int32_t token = 0;
  float logprob = 0.0f;                        // log-softmax of the model's logits (when requested)
  std::vector<std::pair<int32_t, float>> top;  // best alternatives, best first (when requested)
};

// What a consumer receives: tokens generated since the last call and, at the end, the finish reason.
struct SequenceUpdate {
  std::vector<TokenEvent> tokens;
  FinishReason finish = FinishReason::kNone;
  std::string error;  // kError only
  int32_t prompt_tokens = 0;
  int32_t cached_prompt_tokens = 0;  // served from the prefix cache at first admission
};

struct EngineShared;

class SequenceHandle {
 public:
  explicit SequenceHandle(std::shared_ptr<EngineShared> shared) : shared_(std::move(shared)) {}
  // Waits up to `timeout` for news and moves it into `out` (appending tokens). Returns true when something new
  // arrived (tokens or the finish), false on timeout.
  bool next(SequenceUpdate* out, std::chrono::milliseconds timeout);
  // Stops the sequence: its blocks are freed at the next step boundary and it finishes with kCancelled (unless it
  // finished already).
  void cancel();
  bool cancelled() const { return cancelled_.load(); }

 private:
  friend class Engine;
  void push(TokenEvent ev);
  void finish(FinishReason reason, std::string error = {});

  std::shared_ptr<EngineShared> shared_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<TokenEvent> pending_;
  FinishReason finish_ = FinishReason::kNone;
  bool finish_delivered_ = false;
  std::string error_;
  int32_t prompt_tokens_ = 0, cached_tokens_ = 0;
  std::atomic<bool> cancelled_{false};
};

struct EngineStats {
  int64_t waiting = 0;
  int64_t running = 0;
  int64_t kv_blocks_total = 0;
  int64_t kv_blocks_used = 0;
  int64_t kv_blocks_cached = 0;
  int64_t preemptions = 0;
  int64_t steps = 0;
  int64_t max_batch_tokens = 0;     // largest batch run so far
  int64_t max_batch_sequences = 0;  // most sequences in one batch so far
  int64_t prompt_tokens_computed = 0;
  int64_t prompt_tokens_cached = 0;
  int64_t device_recoveries = 0;  // lost devices reset and the model reloaded (see the device loss note above)
  bool device_unusable = false;   // a lost device could not be recovered: every request fails (restart the server)
  bool device_fallback = false;   // a lost device could not be reset: the model runs on the CPU now (slower)
  // Where the scheduler loop's time goes, summed over steps: choosing the batch, the model's forward pass, and
  // what follows it (sampling, stop checks, handing tokens to the consumers).
  double schedule_seconds = 0;
  double forward_seconds = 0;
  double after_seconds = 0;
};

enum class SubmitError { kNone, kInvalid, kOverloaded, kShuttingDown };

struct SubmitResult {
  std::vector<std::shared_ptr<SequenceHandle>> handles;  // one per sequence of the group, in order
  SubmitError error = SubmitError::kNone;
  std::string message;
  bool ok() const { return error == SubmitError::kNone; }
};

class Engine {
 public:
  // The model (and its backend) must outlive the engine.
  static Expected<std::unique_ptr<Engine>> create(model::Model& model, const EngineOptions& options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a group of sequences (n choices of one request). Sequences after the first wait until the first has
  // computed the prompt, then reuse its KV blocks through the prefix cache.
  SubmitResult submit(std::vector<SequenceParams> group);

  // Stops admitting, lets running and queued sequences finish for up to `grace`, ends the rest with kShutdown, and
  // stops the scheduler thread. Idempotent; the destructor calls it with zero grace.
  void shutdown(std::chrono::milliseconds grace);

  EngineStats stats() const;
  const EngineOptions& options() const { return opts_; }
  int32_t ctx_size() const { return opts_.ctx_size; }
  int32_t n_vocab() const;

 private:
  struct Seq;
  struct Group;
  Engine(model::Model& model, const EngineOptions& options);
  void loop();
  // --- run under shared_->mu (see engine_step.cpp) ---
  void reap_cancelled();
  void admit();
  bool build_batch(backend::Batch* batch, std::vector<Seq*>* batch_seqs, std::vector<int32_t>* chunk);
  bool grow_blocks(Seq& s, int32_t n_tokens, bool may_preempt);
  void preempt(Seq& victim);
  void finish_seq(Seq& s, FinishReason reason, const std::string& error = {});
  void release_blocks(Seq& s);
  void register_full_blocks(Seq& s);
  // After a forward pass (or, in_sampling, its sampling) failed with `cause` and the model reports device loss: fails
  // the running sequences, empties the prefix cache, and (with `lock` released meanwhile) recovers the model and
  // makes a new KV cache.
  void recover_device(std::unique_lock<std::mutex>& lock, const Status& cause, bool in_sampling);
  Expected<std::unique_ptr<kv::KvCache>> make_cache() const;
  // After a forward pass that left the logits on the backend: sequences whose consumer wants logprobs get their
  // logits row downloaded (into `logits`) and sampled on the host; the others are sampled by the backend (only
  // their token ids cross to the host).
  // Returns the sampling error, if any (the sequences it hit have failed).
  Status after_forward(const std::vector<Seq*>& batch_seqs, const std::vector<int32_t>& chunk,
                       std::vector<float>& logits);
  // Samples s's next token from its logits row and hands it to the consumer; returns how s finishes (kStop,
  // kLength) or kNone. Touches only s: safe on several threads at once for distinct sequences.
  FinishReason sample_next(Seq& s, const float* logits);
  // Hands `token` to the consumer (with logprobs from `logits` when s asks for them; logits may then not be null).
  FinishReason emit_token(Seq& s, int32_t token, const float* logits);

  model::Model& model_;
  EngineOptions opts_;
  bool kind_sensitive_ = false;  // model_.results_depend_on_kind(), read once
  std::unique_ptr<kv::KvCache> cache_;
  std::shared_ptr<EngineShared> shared_;
  struct State;
  std::unique_ptr<State> st_;  // guarded by shared_->mu
  std::thread thread_;
};

}  // namespace rf::runtime
