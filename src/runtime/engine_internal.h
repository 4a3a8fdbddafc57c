// Engine internals shared by engine.cpp (API, thread) and engine_step.cpp (one scheduling step).
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "runtime/engine.h"
#include "runtime/engine_pool.h"
#include "runtime/scheduler_blocks.h"

namespace rf::runtime {

// Synchronisation shared by the engine and its handles (handles may outlive the engine).
struct EngineShared {
  std::mutex mu;
  std::condition_variable cv;       // wakes the scheduler thread
  std::condition_variable idle_cv;  // signalled when no sequence is left
  bool stop = false;
  bool accepting = true;
  int64_t pending_cancels = 0;
};

struct Engine::Group {
  bool prefilled = false;  // the first sequence has computed the prompt (or left): siblings may be admitted
};

struct Engine::Seq {
  uint64_t id = 0;
  std::shared_ptr<SequenceHandle> handle;
  SequenceParams params;
  std::vector<int32_t> tokens;  // prompt + generated so far
  int32_t n_prompt = 0;
  int32_t n_computed = 0;  // tokens whose K/V is in the cache
  int32_t n_generated = 0;
  int32_t n_registered = 0;  // leading full blocks offered to the prefix cache
  std::vector<int32_t> blocks;
  std::unique_ptr<sampling::Sampler> sampler;
  std::shared_ptr<Group> group;
  bool leader = true;
  bool admitted_once = false;
  bool done = false;
  int32_t pending() const { return static_cast<int32_t>(tokens.size()) - n_computed; }
};

struct Engine::State {
  State(int32_t n_blocks, int32_t block_size, bool prefix_cache) : blocks(n_blocks, block_size, prefix_cache) {}
  std::deque<std::unique_ptr<Seq>> waiting;
  std::vector<std::unique_ptr<Seq>> running;  // in admission order (the last one is preempted first)
  BlockManager blocks;
  EngineStats stats;
  uint64_t next_id = 1;
  // after_forward's scratch (kept between steps): the sequences to sample with their output rows, and their
  // finish; the rows the backend samples, which sequence (index into sample_todo) each is, and their ids.
  std::vector<std::pair<Seq*, int32_t>> sample_todo;
  std::vector<FinishReason> sample_finish;
  std::vector<backend::SampleRow> sample_rows;
  std::vector<size_t> sample_row_todo;
  std::vector<int32_t> sample_ids;
  std::vector<int64_t> sample_host_row;  // per sample_todo entry: its row in after_forward's logits, or -1
  std::vector<int64_t> sample_id_of;     // per sample_todo entry: its index in sample_ids, or -1
  std::unique_ptr<WorkerPool> workers;  // samples the sequences of a step in parallel
  Status unusable;  // a lost device could not be recovered: every request fails with this
};

}  // namespace rf::runtime
