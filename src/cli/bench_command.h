// `rocmforge bench -m MODEL [-p 512] [-n 128] [-r 3] [--threads N] [--device ...] [--decode-batches 8,32] [--json]`:
// prompt-processing (pp) and generation (tg) tokens/s, batched decode tokens/s, load time, peak RSS, weight bytes read per generated token and that traffic as
// a fraction of the memory read bandwidth measured in the same run. `--kernels` instead times the dot kernels of
// every SIMD table this CPU has (GB/s of weights per core).
#pragma once

#include <string>
#include <vector>

namespace rf::cli {

struct BenchOptions {
  std::string model;
  int n_prompt = 512, n_gen = 128, reps = 3, threads = 0, n_gpu_layers = -1;
  std::string device = "auto";
  bool json = false, kernels = false;
  bool batch_invariant = false;  // as serve runs (BackendOptions::batch_invariant)
  int parallel = 8;              // serve's default --parallel (BackendOptions::max_sequences)
  std::vector<int> decode_batches;  // sequences per batched-decode run (none by default)
};

struct BenchResult {
  std::string model, device, backend;
  int threads = 0;
  int n_prompt = 0, n_gen = 0, reps = 0;
  bool batch_invariant = false;
  int parallel = 0;  // with batch_invariant: the --parallel the backend was told (BackendOptions::max_sequences)
  double pp_tokens_per_s = 0, pp_tokens_per_s_sd = 0;
  double tg_tokens_per_s = 0, tg_tokens_per_s_sd = 0;
  double weight_bytes_per_token = 0;
  double memory_bandwidth_bytes_per_s = 0;
  double tg_roofline_fraction = 0;
  double load_seconds = 0;
  double peak_rss_bytes = 0;
  // --decode-batches: aggregate decode tokens/s with that many sequences stepping together (one token each).
  struct BatchedDecode {
    int sequences = 0;
    double tokens_per_s = 0;
  };
  std::vector<BatchedDecode> batched_tg;
};

// Multi-threaded streaming read of a buffer far larger than the last-level cache: bytes per second (best of a few
// passes). The buffer is freed before returning.
double measure_read_bandwidth(int n_threads, size_t bytes = size_t{512} << 20);
// VmHWM of this process in bytes (0 when /proc is unavailable); reset_peak_rss() restarts the high-water mark.
double peak_rss_bytes();
void reset_peak_rss();

// Runs the command; returns the process exit status (errors go to stderr).
int run_bench(const BenchOptions& opts);

}  // namespace rf::cli
