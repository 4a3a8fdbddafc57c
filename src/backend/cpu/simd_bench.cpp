#include "backend/cpu/simd_bench.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>

#include "backend/cpu/simd_kernels.h"
#include "quant/quant.h"

namespace rf::backend::cpu {
namespace {

using quant::Type;

constexpr Type kTypes[] = {Type::Q4_0,   Type::Q4_1,   Type::Q5_0, Type::Q5_1, Type::Q8_0,
                           Type::IQ4_NL, Type::Q2_K,   Type::Q3_K, Type::Q4_K, Type::Q5_K,
                           Type::Q6_K,   Type::IQ4_XS, Type::F16,  Type::BF16, Type::F32};

}  // namespace

std::vector<KernelSpeed> measure_dot_kernels(double seconds) {
  constexpr int64_t kN = 4096;  // elements per row
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(kN);
  for (auto& v : x) v = dist(rng);
  std::vector<KernelSpeed> out;
  for (Type wt : kTypes) {
    const size_t row_bytes = *quant::row_bytes(wt, kN);
    const int64_t rows = std::max<int64_t>(4, static_cast<int64_t>((size_t{256} << 10) / row_bytes));  // ~256 KiB
    std::vector<uint8_t> w(row_bytes * static_cast<size_t>(rows));
    std::vector<float> wf(kN);
    for (int64_t r = 0; r < rows; ++r) {
      for (auto& v : wf) v = dist(rng);
      uint8_t* dst = w.data() + static_cast<size_t>(r) * row_bytes;
      if (quant::can_quantize(wt)) {
        (void)quant::quantize(wt, wf.data(), dst, kN);
      } else {
        scalar_kernels().for_act(wt).quantize(wf.data(), dst, kN);
      }
    }
    for (const KernelTable* t : available_kernel_tables()) {
      const TypeKernels& k = t->for_weight(wt);
      std::vector<uint8_t> act(*quant::row_bytes(k.act_type, kN));
      t->for_act(k.act_type).quantize(x.data(), act.data(), kN);
      volatile float sink = 0.0f;
      int64_t passes = 0;
      const auto t0 = std::chrono::steady_clock::now();
      double elapsed = 0.0;
      do {
        float s = 0.0f;
        for (int64_t r = 0; r < rows; ++r) s += k.dot(kN, w.data() + static_cast<size_t>(r) * row_bytes, act.data());
        sink = sink + s;
        ++passes;
        elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      } while (elapsed < seconds);
      out.push_back({t->isa, std::string(quant::type_name(wt)),
                     static_cast<double>(passes) * static_cast<double>(w.size()) / elapsed / 1e9});
      if (k.dot_rows == nullptr) continue;
      // Multi-row kernel with 1 (decode) and 8 (prefill) activation rows: weight bytes x rows per second.
      for (int64_t n_act : {1, 8}) {
        std::vector<uint8_t> acts(act.size() * static_cast<size_t>(n_act));
        for (int64_t a = 0; a < n_act; ++a) std::copy(act.begin(), act.end(), acts.begin() + a * act.size());
        std::vector<float> res(static_cast<size_t>(rows * n_act));
        passes = 0;
        const auto t1 = std::chrono::steady_clock::now();
        do {
          k.dot_rows(kN, w.data(), row_bytes, rows, acts.data(), act.size(), n_act, res.data(),
                     static_cast<size_t>(rows));
          sink = sink + res[0];
          ++passes;
          elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
        } while (elapsed < seconds);
        out.push_back({t->isa + (n_act == 1 ? ".rows1" : ".rows8"), std::string(quant::type_name(wt)),
                       static_cast<double>(passes * n_act) * static_cast<double>(w.size()) / elapsed / 1e9});
      }
    }
  }
  return out;
}

std::string format_kernel_speeds(const std::vector<KernelSpeed>& speeds) {
  std::vector<std::string> isas;
  std::map<std::string, std::map<std::string, double>> by_type;
  std::vector<std::string> types;
  for (const auto& s : speeds) {
    if (std::find(isas.begin(), isas.end(), s.isa) == isas.end()) isas.push_back(s.isa);
    if (std::find(types.begin(), types.end(), s.type) == types.end()) types.push_back(s.type);
    by_type[s.type][s.isa] = s.gbytes_per_s;
  }
  std::string text =
      "dot kernels, GB/s of weights on one core (L2-resident, 4096-element rows; .rowsN: multi-row kernel,\n"
      "weight bytes x N activation rows per second)\ntype    ";
  char buf[64];
  for (const auto& isa : isas) {
    std::snprintf(buf, sizeof(buf), "%13s", isa.c_str());
    text += buf;
  }
  text += "   best/scalar\n";
  for (const auto& type : types) {
    std::snprintf(buf, sizeof(buf), "%-8s", type.c_str());
    text += buf;
    double best = 0.0;
    for (const auto& isa : isas) {
      const double v = by_type[type][isa];
      best = std::max(best, v);
      std::snprintf(buf, sizeof(buf), "%13.2f", v);
      text += buf;
    }
    const double scalar = by_type[type][isas.front()];
    std::snprintf(buf, sizeof(buf), "   %8.1fx\n", scalar > 0 ? best / scalar : 0.0);
    text += buf;
  }
  return text;
}

}  // namespace rf::backend::cpu
