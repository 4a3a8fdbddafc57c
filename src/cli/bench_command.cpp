// `rocmforge bench`: see bench_command.h. Timings follow llama-bench: one untimed warm-up of each phase, then
// -r repetitions; pp = a -p token prompt in one batch from an empty context, tg = -n single-token steps from an
// empty context (logits of every step computed, as generation needs them).
#include "cli/bench_command.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/simd_bench.h"
#include "kv/kv_cache.h"
#include "model/model.h"
#include "runtime/device_select.h"

namespace rf::cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

void mean_sd(const std::vector<double>& v, double* mean, double* sd) {
  *mean = v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  double ss = 0.0;
  for (double x : v) ss += (x - *mean) * (x - *mean);
  *sd = v.size() > 1 ? std::sqrt(ss / static_cast<double>(v.size() - 1)) : 0.0;
}

// Deterministic token ids spread over the vocabulary.
int32_t bench_token(int64_t i, int64_t n_vocab) { return static_cast<int32_t>((i * 7919 + 13) % n_vocab); }

// Runs `n_tokens` tokens of a fresh sequence in batches of `batch` tokens; returns the seconds taken. Batches of
// one token stand for decode: their token counts as generated (Batch::generated), as the engine marks it.
Expected<double> run_sequence(model::Model& m, kv::KvCache& cache, int n_tokens, int batch) {
  const int32_t seq = cache.add_sequence();
  std::vector<float> logits;
  const auto t0 = Clock::now();
  for (int done = 0; done < n_tokens;) {
    const int n = std::min(batch, n_tokens - done);
    Status s = cache.reserve(seq, n);
    if (!s.ok()) return s;
    backend::Batch b;
    for (int i = 0; i < n; ++i) {
      b.tokens.push_back(bench_token(done + i, m.hparams().n_vocab));
      b.positions.push_back(done + i);
      b.seq.push_back(0);
    }
    if (batch == 1) b.generated.push_back(1);
    b.block_tables.push_back(cache.block_table(seq));
    b.output_rows.push_back(n - 1);
    s = m.forward(std::move(b), cache, &logits);
    if (!s.ok()) return s;
    cache.advance(seq, n);
    done += n;
  }
  const double secs = seconds_since(t0);
  cache.release_sequence(seq);
  return secs;
}

// Batched decode: n_seqs sequences each get a short prompt (untimed), then n_gen steps in which every sequence
// adds one token (one batch of n_seqs tokens, logits for all); returns aggregate generated tokens per second.
Expected<double> run_batched_decode(model::Model& m, kv::KvCache& cache, int n_seqs, int n_gen) {
  constexpr int kPrompt = 16;
  std::vector<int32_t> seqs;
  std::vector<float> logits;
  const auto release = [&] {
    for (const int32_t s : seqs) cache.release_sequence(s);
  };
  const auto step = [&](int n_each, int pos0) -> Status {
    backend::Batch b;
    for (size_t i = 0; i < seqs.size(); ++i) {
      RF_RETURN_IF_ERROR(cache.reserve(seqs[i], n_each));
      for (int k = 0; k < n_each; ++k) {
        b.tokens.push_back(bench_token(static_cast<int64_t>(i) * 131 + pos0 + k, m.hparams().n_vocab));
        b.positions.push_back(pos0 + k);
        b.seq.push_back(static_cast<int32_t>(i));
        b.generated.push_back(n_each == 1 ? 1 : 0);  // the decode steps' tokens, not the prompts'
      }
      b.block_tables.push_back(cache.block_table(seqs[i]));
      b.output_rows.push_back(static_cast<int32_t>(b.tokens.size()) - 1);
    }
    RF_RETURN_IF_ERROR(m.forward(std::move(b), cache, &logits));
    for (const int32_t s : seqs) cache.advance(s, n_each);
    return ok_status();
  };
  for (int i = 0; i < n_seqs; ++i) seqs.push_back(cache.add_sequence());
  Status s = step(kPrompt, 0);
  if (s.ok()) s = step(1, kPrompt);  // warm-up
  const auto t0 = Clock::now();
  for (int g = 1; s.ok() && g < n_gen; ++g) s = step(1, kPrompt + g);
  const double secs = seconds_since(t0);
  release();
  if (!s.ok()) return s;
  return static_cast<double>(n_seqs) * (n_gen - 1) / secs;
}

Expected<BenchResult> bench_model(const BenchOptions& o) {
  auto kind = runtime::parse_device_kind(o.device);
  if (!kind) return Status::error("bench: " + kind.error_message());
  if (o.n_prompt < 0 || o.n_gen < 0 || o.reps < 1) return Status::error("bench: -p/-n must be >= 0 and -r >= 1");
  int max_seqs = 1;
  for (const int b : o.decode_batches) {
    if (b < 1 || b > 1024) return Status::error("bench: --decode-batches values must be in [1, 1024]");
    max_seqs = std::max(max_seqs, b);
  }
  const int batched_gen = std::max(o.n_gen, 2);
  BenchResult r;
  r.model = o.model;
  r.n_prompt = o.n_prompt;
  r.n_gen = o.n_gen;
  r.reps = o.reps;
  r.batch_invariant = o.batch_invariant;
  r.parallel = o.batch_invariant ? o.parallel : 0;
  backend::BackendOptions bo;
  bo.device = *kind;
  bo.n_threads = o.threads;
  bo.n_gpu_layers = o.n_gpu_layers;
  bo.batch_invariant = o.batch_invariant;
  bo.max_sequences = o.parallel;
  auto choice = runtime::select_backend(bo);
  if (!choice) return Status::error("bench: " + choice.error_message());
  if (!choice->note.empty()) std::fprintf(stderr, "rocmforge: %s\n", choice->note.c_str());
  std::unique_ptr<backend::Backend> owned = std::move(choice->backend);
  backend::Backend& be = *owned;
  r.device = choice->device_name;
  r.backend = be.name();
  if (choice->is_gpu) {
    // The roofline of a GPU run is the device's own copy bandwidth (read + write), measured here.
    auto bw = runtime::measure_gpu_copy_bandwidth(be);
    if (!bw) return Status::error("bench: " + bw.error_message());
    r.memory_bandwidth_bytes_per_s = *bw;
  } else {
    r.threads = static_cast<backend::cpu::CpuBackend&>(be).n_threads();
    // Bandwidth first, then forget its buffer in the RSS high-water mark so peak RSS is the model's.
    r.memory_bandwidth_bytes_per_s = measure_read_bandwidth(r.threads);
  }
  reset_peak_rss();

  const auto t0 = Clock::now();
  model::OffloadRequest sizes;
  const int batched_slots = o.decode_batches.empty() ? 0 : max_seqs * (batched_gen + 16 + 16);
  sizes.kv_tokens = std::max(std::max(o.n_prompt, o.n_gen) + 64, batched_slots);
  sizes.batch_tokens = std::max({o.n_prompt, 1, o.decode_batches.empty() ? 1 : max_seqs * 16});
  sizes.output_rows = max_seqs;
  auto loaded = runtime::load_model(o.model, be, bo, sizes);
  if (!loaded) return loaded.status();
  r.load_seconds = seconds_since(t0);
  model::Model& m = **loaded;
  r.weight_bytes_per_token = static_cast<double>(m.weight_bytes_per_token());

  kv::KvOptions kvo;
  kvo.n_slots = sizes.kv_tokens;
  auto cache = kv::KvCache::create(be, m.kv_shape(), kvo);
  if (!cache) return cache.status();

  std::vector<double> pp, tg;
  if (o.n_prompt > 0) {
    // The warm-up is the timed prompt itself: a shorter one takes other kernels, and the first pass of the long
    // prompt's own (on a GPU the vendor BLAS's set-up, ~0.2 s) then lands in the first repetition.
    auto warm = run_sequence(m, **cache, o.n_prompt, o.n_prompt);
    if (!warm) return warm.status();
    for (int i = 0; i < o.reps; ++i) {
      auto secs = run_sequence(m, **cache, o.n_prompt, o.n_prompt);
      if (!secs) return secs.status();
      pp.push_back(o.n_prompt / *secs);
    }
  }
  if (o.n_gen > 0) {
    // Decode steps before the timed ones: a backend may tune itself over its first single-token steps (the GPU
    // backend times 2 x 8 of them with and without graphs and keeps the faster), which would otherwise land in the
    // first repetition.
    constexpr int kDecodeWarmup = 20;
    auto warm = run_sequence(m, **cache, kDecodeWarmup, 1);
    if (!warm) return warm.status();
    for (int i = 0; i < o.reps; ++i) {
      auto secs = run_sequence(m, **cache, o.n_gen, 1);
      if (!secs) return secs.status();
      tg.push_back(o.n_gen / *secs);
    }
  }
  for (const int n_seqs : o.decode_batches) {
    auto tps = run_batched_decode(m, **cache, n_seqs, batched_gen);
    if (!tps) return tps.status();
    r.batched_tg.push_back({n_seqs, *tps});
  }
  mean_sd(pp, &r.pp_tokens_per_s, &r.pp_tokens_per_s_sd);
  mean_sd(tg, &r.tg_tokens_per_s, &r.tg_tokens_per_s_sd);
  r.tg_roofline_fraction = r.memory_bandwidth_bytes_per_s > 0
                               ? r.tg_tokens_per_s * r.weight_bytes_per_token / r.memory_bandwidth_bytes_per_s
                               : 0.0;
  r.peak_rss_bytes = peak_rss_bytes();
  return r;
}

nlohmann::json to_json(const BenchResult& r) {
  nlohmann::json batched = nlohmann::json::array();
  for (const auto& b : r.batched_tg) batched.push_back({{"sequences", b.sequences}, {"tokens_per_s", b.tokens_per_s}});
  return {{"model", r.model},
          {"device", r.device},
          {"backend", r.backend},
          {"threads", r.threads},
          {"n_prompt", r.n_prompt},
          {"n_gen", r.n_gen},
          {"repetitions", r.reps},
          {"batch_invariant", r.batch_invariant},
          {"parallel", r.parallel},
          {"pp_tokens_per_s", r.pp_tokens_per_s},
          {"pp_tokens_per_s_sd", r.pp_tokens_per_s_sd},
          {"tg_tokens_per_s", r.tg_tokens_per_s},
          {"tg_tokens_per_s_sd", r.tg_tokens_per_s_sd},
          {"weight_bytes_per_token", r.weight_bytes_per_token},
          {"memory_bandwidth_bytes_per_s", r.memory_bandwidth_bytes_per_s},
          {"tg_roofline_fraction", r.tg_roofline_fraction},
          {"load_seconds", r.load_seconds},
          {"peak_rss_bytes", r.peak_rss_bytes},
          {"batched_tg", batched}};
}

void print_text(const BenchResult& r) {
  std::printf("model      %s\n", r.model.c_str());
  std::printf("device     %s, backend %s\n", r.device.c_str(), r.backend.c_str());
  std::printf("load       %.3f s, peak RSS %.1f MiB\n", r.load_seconds, r.peak_rss_bytes / (1 << 20));
  std::printf("pp%-5d    %8.2f ± %.2f tokens/s\n", r.n_prompt, r.pp_tokens_per_s, r.pp_tokens_per_s_sd);
  std::printf("tg%-5d    %8.2f ± %.2f tokens/s\n", r.n_gen, r.tg_tokens_per_s, r.tg_tokens_per_s_sd);
  for (const auto& b : r.batched_tg) {
    std::printf("tg x%-4d   %8.2f tokens/s aggregate (%d sequences, one token each per step)\n", b.sequences,
                b.tokens_per_s, b.sequences);
  }
  std::printf("weights    %.1f MiB read per generated token\n", r.weight_bytes_per_token / (1 << 20));
  std::printf("bandwidth  %.1f GB/s measured read; tg reads weights at %.1f GB/s = %.0f%% of it\n",
              r.memory_bandwidth_bytes_per_s / 1e9, r.tg_tokens_per_s * r.weight_bytes_per_token / 1e9,
              100.0 * r.tg_roofline_fraction);
}

}  // namespace

double measure_read_bandwidth(int n_threads, size_t bytes) {
  n_threads = std::max(1, n_threads);
  const size_t n = bytes / sizeof(uint64_t);
  std::unique_ptr<uint64_t[]> buf(new uint64_t[n]);
  std::vector<std::thread> workers;
  const size_t per = n / static_cast<size_t>(n_threads);
  auto for_each_thread = [&](auto fn) {
    workers.clear();
    for (int t = 0; t < n_threads; ++t) workers.emplace_back(fn, static_cast<size_t>(t) * per, per);
    for (auto& w : workers) w.join();
  };
  // Each thread touches its own part first (pages land where they are read).
  for_each_thread([&](size_t b, size_t len) {
    for (size_t i = 0; i < len; ++i) buf[b + i] = (b + i) * 0x9e3779b97f4a7c15ull;
  });
  std::vector<uint64_t> sinks(static_cast<size_t>(n_threads));
  double best = 0.0;
  for (int pass = 0; pass < 4; ++pass) {
    const auto t0 = Clock::now();
    for_each_thread([&](size_t b, size_t len) {
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;  // independent chains so the loop vectorizes and streams
      const uint64_t* p = buf.get() + b;
      for (size_t i = 0; i + 4 <= len; i += 4) {
        s0 += p[i];
        s1 += p[i + 1];
        s2 += p[i + 2];
        s3 += p[i + 3];
      }
      sinks[b / per] = s0 ^ s1 ^ s2 ^ s3;
    });
    const double secs = seconds_since(t0);
    if (pass > 0) best = std::max(best, static_cast<double>(per * static_cast<size_t>(n_threads) * 8) / secs);
  }
  volatile uint64_t keep = std::accumulate(sinks.begin(), sinks.end(), uint64_t{0});
  (void)keep;
  return best;
}

double peak_rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) * 1024.0;  // kB
  }
  return 0.0;
}

void reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";  // Linux: resets VmHWM to the current RSS
}

int run_bench(const BenchOptions& o) {
  if (o.kernels) {
    const auto speeds = backend::cpu::measure_dot_kernels(0.05);
    if (o.json) {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& s : speeds) j.push_back({{"isa", s.isa}, {"type", s.type}, {"gbytes_per_s", s.gbytes_per_s}});
      std::printf("%s\n", j.dump(2).c_str());
    } else {
      std::printf("%s", backend::cpu::format_kernel_speeds(speeds).c_str());
    }
    return 0;
  }
  if (o.model.empty()) {
    std::fprintf(stderr, "rocmforge: bench: -m MODEL is required\n");
    return 1;
  }
  auto r = bench_model(o);
  if (!r) {
    std::fprintf(stderr, "rocmforge: %s\n", r.status().message().c_str());
    return 1;
  }
  if (o.json) {
    std::printf("%s\n", to_json(*r).dump(2).c_str());
  } else {
    print_text(*r);
  }
  return 0;
}

}  // namespace rf::cli
