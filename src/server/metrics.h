// Server metrics in the Prometheus text exposition format (version 0.0.4): counters, gauges and histograms.
// Thread-safe; the engine-side gauges (queue, running sequences, KV blocks) are passed in at render time.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace rf::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double v);
  // Lines "<name>_bucket{le=...} n", "<name>_sum", "<name>_count" (cumulative buckets, +Inf last).
  std::string render(const std::string& name) const;
  uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative), last = +Inf
  double sum_ = 0.0;
  uint64_t count_ = 0;
};

struct EngineGauges {
  int64_t queue_length = 0;       // sequences waiting for admission
  int64_t running_sequences = 0;  // admitted (prefilling or decoding)
  int64_t kv_blocks_total = 0;
  int64_t kv_blocks_used = 0;    // referenced by a live sequence
  int64_t kv_blocks_cached = 0;  // unreferenced but kept for prefix reuse
  int64_t preemptions = 0;       // total
  int64_t steps = 0;             // scheduler steps (batches) run
  double schedule_seconds = 0;   // time of those steps by phase (EngineStats)
  double forward_seconds = 0;
  double after_seconds = 0;
  int64_t device_recoveries = 0;  // lost GPU contexts reset and the model reloaded
  bool device_unusable = false;   // a lost device could not be recovered
  bool device_fallback = false;   // a lost device could not be reset: the model runs on the CPU
};

class Metrics {
 public:
  Metrics();
  void count_request(const std::string& endpoint, int status);
  void add_prompt_tokens(int64_t n, int64_t cached);
  void add_generated_tokens(int64_t n);
  void observe_time_to_first_token(double seconds);
  void observe_inter_token_latency(double seconds);
  void observe_request_duration(double seconds);
  // Generation responses being produced or written (from submission until the last byte is handed over).
  void generation_started();
  void generation_ended();
  int64_t generations_in_flight() const;
  // Waits up to `timeout` until no generation is in flight; true when none is.
  bool wait_generations_done(std::chrono::milliseconds timeout) const;

  std::string render(const EngineGauges& gauges) const;

  // Label value escaping per the exposition format (backslash, quote, newline).
  static std::string escape_label(const std::string& v);
  // Number formatting: integers without exponent, +Inf/-Inf/NaN spelled as Prometheus expects.
  static std::string format_value(double v);

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable idle_cv_;
  int64_t in_flight_ = 0;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  int64_t prompt_tokens_ = 0, cached_prompt_tokens_ = 0, generated_tokens_ = 0;
  Histogram ttft_, itl_, duration_;
};

}  // namespace rf::server
