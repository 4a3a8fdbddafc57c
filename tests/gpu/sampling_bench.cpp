// Per-step sampling time, host path against the device path (not a test: run it on the GPU machine).
// Host path: download the rows' logits (n_vocab floats each) and run the CPU Sampler per row, one thread (what
// `generate` does; the engine splits rows over its sampling threads). Device path: GpuBackend::sample, only
// the ids cross. Logits: a peaked random row per sequence. Usage: gpu_sampling_bench [n_vocab ...]
// gpu_sampling_bench --engine MODEL.gguf [n_seqs]: the engine decoding n_seqs sequences together (64 tokens each,
// T 0.8, top-k 40, top-p 0.95, min-p 0.05): tokens/s and the step time split (ROCMFORGE_GPU_SAMPLING=0: host path).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "backend/gpu/gpu_backend.h"
#include "model/model.h"
#include "runtime/engine.h"
#include "sampling/sampler.h"

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

int run_engine(rf::gpu::GpuBackend& be, const std::string& path, int n_seqs) {
  using namespace rf;
  auto m = model::Model::load(path, be);
  if (!m.ok()) {
    std::fprintf(stderr, "%s\n", m.error_message().c_str());
    return 1;
  }
  runtime::EngineOptions o;
  o.ctx_size = 256;
  o.max_running = n_seqs;
  for (int round = 0; round < 2; ++round) {  // the first warms up (graphs, allocations)
    auto e = runtime::Engine::create(**m, o);
    if (!e.ok()) {
      std::fprintf(stderr, "%s\n", e.error_message().c_str());
      return 1;
    }
    std::vector<std::shared_ptr<runtime::SequenceHandle>> hs;
    const auto t0 = Clock::now();
    for (int i = 0; i < n_seqs; ++i) {
      runtime::SequenceParams p;
      for (int j = 0; j < 16; ++j) p.prompt.push_back((i * 131 + j * 7919) % (**m).hparams().n_vocab);
      p.max_tokens = 64;
      p.ignore_eos = true;
      p.sampler.seed = static_cast<uint64_t>(i);
      hs.push_back((*e)->submit({p}).handles.at(0));
    }
    int64_t tokens = 0;
    for (auto& h : hs) {
      runtime::SequenceUpdate u;
      while (u.finish == runtime::FinishReason::kNone) h->next(&u, std::chrono::milliseconds(100));
      tokens += static_cast<int64_t>(u.tokens.size());
    }
    const double ms = ms_since(t0);
    const runtime::EngineStats st = (*e)->stats();
    if (round == 1) {
      std::printf(
          "engine: %d sequences, %lld tokens in %.1f ms: %.1f tokens/s; per step: forward %.3f ms, sampling and "
          "hand-off %.3f ms (%lld steps)\n",
          n_seqs, static_cast<long long>(tokens), ms, 1e3 * static_cast<double>(tokens) / ms,
          1e3 * st.forward_seconds / static_cast<double>(st.steps),
          1e3 * st.after_seconds / static_cast<double>(st.steps), static_cast<long long>(st.steps));
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace rf;
  auto created = gpu::GpuBackend::create(0);
  if (!created.ok()) {
    std::fprintf(stderr, "no GPU: %s\n", created.error_message().c_str());
    return 1;
  }
  gpu::GpuBackend& be = **created;
  if (argc > 2 && std::string(argv[1]) == "--engine")
    return run_engine(be, argv[2], argc > 3 ? std::atoi(argv[3]) : 32);
  std::vector<int64_t> vocabs = {32000, 151936};
  if (argc > 1) {
    vocabs.clear();
    for (int i = 1; i < argc; ++i) vocabs.push_back(std::atoll(argv[i]));
  }
  struct Setting {
    const char* name;
    sampling::SamplerParams p;
  };
  std::vector<Setting> settings(3);
  settings[0].name = "greedy";
  settings[0].p.temperature = 0.0f;
  settings[1].name = "T0.8 k40 p0.95 min-p0.05";
  settings[2].name = "T0.8 k0 p0.95 min-p0.05";
  settings[2].p.top_k = 0;
  constexpr int kIters = 50;
  std::printf("%-8s %-5s %-26s %12s %12s %8s\n", "n_vocab", "rows", "sampler", "host ms/step", "gpu ms/step",
              "on host");
  for (const int64_t nv : vocabs) {
    for (const int n_rows : {1, 32}) {
      std::mt19937 gen(1);
      std::normal_distribution<float> normal(0.0f, 2.0f);
      std::vector<float> host(static_cast<size_t>(nv * n_rows));
      for (float& v : host) v = normal(gen);
      for (int r = 0; r < n_rows; ++r) host[static_cast<size_t>(r * nv + (r * 7919) % nv)] = 12.0f;
      auto buf = be.alloc(host.size() * sizeof(float));
      const backend::Tensor t = backend::make_tensor(buf->data(), quant::Type::F32, nv, n_rows);
      be.to_device(t, host.data(), host.size() * sizeof(float));
      be.sync();
      for (const Setting& s : settings) {
        std::vector<sampling::Sampler> samplers(static_cast<size_t>(n_rows), sampling::Sampler(s.p));
        const std::vector<int32_t> history = {1, 2, 3};
        std::vector<float> down(host.size());
        // Host path.
        double host_ms = 0.0;
        for (int it = 0; it < kIters + 1; ++it) {
          const auto t0 = Clock::now();
          be.to_host(down.data(), t, down.size() * sizeof(float));
          for (int r = 0; r < n_rows; ++r) {
            (void)samplers[static_cast<size_t>(r)].sample(
                std::span<const float>(down.data() + static_cast<size_t>(r * nv), static_cast<size_t>(nv)), history);
          }
          if (it > 0) host_ms += ms_since(t0);  // the first one warms up
        }
        // Device path.
        double gpu_ms = 0.0;
        int on_host = 0;
        std::vector<int32_t> ids(static_cast<size_t>(n_rows));
        const backend::HostSampleFn fallback = [&](std::span<const size_t> which, const float* lg, int32_t* out) {
          for (size_t j = 0; j < which.size(); ++j) {
            out[which[j]] = samplers[which[j]].sample_drawn(
                std::span<const float>(lg + j * static_cast<size_t>(nv), static_cast<size_t>(nv)), history, 0.5);
            ++on_host;
          }
        };
        for (int it = 0; it < kIters + 1; ++it) {
          const auto t0 = Clock::now();
          std::vector<backend::SampleRow> rows(static_cast<size_t>(n_rows));
          for (int r = 0; r < n_rows; ++r) {
            sampling::Sampler& sm = samplers[static_cast<size_t>(r)];
            backend::SampleRow& row = rows[static_cast<size_t>(r)];
            row.row = r;
            row.temperature = s.p.temperature;
            row.top_k = s.p.top_k;
            row.top_p = s.p.top_p;
            row.min_p = s.p.min_p;
            row.u = sm.draws() ? sm.next_uniform() : 0.0;
          }
          const Status st = be.sample(t, rows, fallback, ids.data());
          if (!st.ok()) {
            std::fprintf(stderr, "sample: %s\n", st.message().c_str());
            return 1;
          }
          if (it > 0) gpu_ms += ms_since(t0);
        }
        std::printf("%-8lld %-5d %-26s %12.4f %12.4f %8d\n", static_cast<long long>(nv), n_rows, s.name,
                    host_ms / kIters, gpu_ms / kIters, on_host);
      }
    }
  }
  return 0;
}
