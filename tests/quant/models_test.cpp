// Every tensor of every file in shared/models against the same model's F32 master: the dequantized values must
// be close to the master (nRMSE = rms(deq - f32) / rms(f32) below a per-type bound), and re-quantizing the master
// with our quantizer must give an error no worse than llama.cpp's (the file's). Prints the per-type table.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "quant/quant.h"
#include "quant/quant_test_util.h"
#include "support/shared_data.h"

namespace rf::quant {
namespace {

struct TypeStats {
  int tensors = 0;
  double file_err_sum = 0.0;  // nRMSE of the file's tensor vs the f32 master
  double file_err_max = 0.0;
  int requantized = 0;
  double ours_err_sum = 0.0;     // nRMSE of our re-quantization of the master
  double file_err_sum_rq = 0.0;  // file nRMSE over the same (re-quantized) elements
  size_t blocks = 0;
  size_t same_blocks = 0;  // our blocks byte-identical to the file's
};

// Upper bound of the per-tensor nRMSE of a file's tensor against its F32 master.
double bound_for(Type t) {
  switch (t) {
    case Type::F32:
      return 0.0;
    case Type::F16:
      return 1e-3;
    case Type::BF16:
      return 5e-3;
    case Type::Q8_0:
      return 0.01;
    case Type::Q6_K:
      return 0.02;
    case Type::Q5_0:
    case Type::Q5_1:
    case Type::Q5_K:
      return 0.05;
    case Type::Q4_0:
    case Type::Q4_1:
    case Type::Q4_K:
    case Type::IQ4_NL:
    case Type::IQ4_XS:
      return 0.11;
    case Type::Q3_K:
      return 0.2;
    case Type::Q2_K:
      return 0.4;
    default:
      return 0.5;
  }
}

bool is_iq_family(Type t) {
  switch (t) {
    case Type::IQ2_XXS:
    case Type::IQ2_XS:
    case Type::IQ3_XXS:
    case Type::IQ1_S:
    case Type::IQ4_NL:
    case Type::IQ3_S:
    case Type::IQ2_S:
    case Type::IQ4_XS:
    case Type::IQ1_M:
    case Type::TQ1_0:
    case Type::TQ2_0:
    case Type::MXFP4:
      return true;
    default:
      return false;
  }
}

// "synth-llama-Q4_K_M.gguf" -> "synth-llama-f32.gguf"; "" for masters and files without one.
std::string master_of(const std::string& file) {
  const auto dash = file.rfind('-');
  if (dash == std::string::npos) return "";
  const std::string master = file.substr(0, dash) + "-f32.gguf";
  return master == file ? "" : master;
}

// Whole rows of ti covering at least min(limit, all) elements.
int64_t rows_prefix(const gguf::TensorInfo& ti, int64_t limit) {
  const int64_t row = ti.ne[0];
  if (row <= 0) return ti.n_elements();
  return std::min<int64_t>(ti.n_elements(), std::max<int64_t>(row, limit / row * row));
}

std::vector<float> dequantize_tensor(const gguf::TensorInfo& ti, int64_t n, Status* status) {
  std::vector<float> y(static_cast<size_t>(n));
  *status = dequantize(ti.type, ti.data, y.data(), n);
  return y;
}

TEST(SharedModels, EveryTensorMatchesItsF32MasterAndOurQuantizerMatchesLlamaCpp) {
  RF_REQUIRE_SHARED(models, "models");
  const bool slow_skip = std::getenv("ROCMFORGE_SLOW_TESTS_SKIP") != nullptr;
  // Under the sanitizers, check a prefix of whole rows of each tensor. Re-quantize a prefix of whole rows (most
  // tensors fit whole; a short one under the sanitizers).
  const int64_t check_limit = slow_skip ? (int64_t{1} << 16) : INT64_MAX;
  const int64_t requant_limit = slow_skip ? 8192 : (int64_t{1} << 18);

  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(models)) {
    if (entry.path().extension() == ".gguf") files.push_back(entry.path().filename().string());
  }
  std::sort(files.begin(), files.end());
  ASSERT_FALSE(files.empty());

  std::map<Type, TypeStats> stats;
  std::map<std::string, std::shared_ptr<gguf::File>> masters;
  int skipped_iq = 0;
  for (const std::string& name : files) {
    auto file = gguf::File::open(models + "/" + name);
    ASSERT_TRUE(file.ok()) << file.error_message();
    const std::string master_name = master_of(name);
    std::shared_ptr<gguf::File> master;
    if (!master_name.empty()) {
      if (!masters.count(master_name)) {
        auto m = gguf::File::open(models + "/" + master_name);
        ASSERT_TRUE(m.ok()) << master_name << ": " << m.error_message();
        masters[master_name] = *m;
      }
      master = masters[master_name];
    }
    for (const gguf::TensorInfo& ti : (*file)->tensors()) {
      const std::string where = name + " tensor '" + ti.name + "' (" + std::string(type_name(ti.type)) + ")";
      Status st;
      const int64_t n_check = rows_prefix(ti, check_limit);
      const std::vector<float> deq = dequantize_tensor(ti, n_check, &st);
      if (!st.ok() && is_iq_family(ti.type)) {
        ++skipped_iq;  // that family is another module's; tested once it is built in
        continue;
      }
      ASSERT_TRUE(st.ok()) << where << ": " << st.message();
      for (float v : deq) ASSERT_TRUE(std::isfinite(v)) << where;
      if (!master) continue;  // a master itself, or a file with no master (stories260K): finite is all we know
      const gguf::TensorInfo* mt = master->find_tensor(ti.name);
      ASSERT_NE(mt, nullptr) << where << ": missing in " << master_name;
      ASSERT_EQ(mt->type, Type::F32) << master_name << " " << ti.name;
      ASSERT_EQ(mt->ne, ti.ne) << where;
      Status mst;
      const std::vector<float> ref = dequantize_tensor(*mt, n_check, &mst);
      ASSERT_TRUE(mst.ok()) << mst.message();

      const double err = test::nrmse(deq, ref);
      EXPECT_LE(err, bound_for(ti.type)) << where;
      TypeStats& s = stats[ti.type];
      ++s.tensors;
      s.file_err_sum += err;
      s.file_err_max = std::max(s.file_err_max, err);

      if (!can_quantize(ti.type) || ti.type == Type::F32) continue;
      // Re-quantize (a whole-row prefix of) the master with our quantizer.
      const int64_t n = std::min(n_check, rows_prefix(ti, requant_limit));
      const std::vector<float> ref_part(ref.begin(), ref.begin() + n);
      const std::vector<float> deq_part(deq.begin(), deq.begin() + n);
      const std::vector<uint8_t> ours = test::quantized(ti.type, ref_part);
      const std::vector<float> ours_deq = test::dequantized(ti.type, ours, n);
      ++s.requantized;
      s.ours_err_sum += test::nrmse(ours_deq, ref_part);
      s.file_err_sum_rq += test::nrmse(deq_part, ref_part);
      const TypeTraits& tr = traits(ti.type);
      for (size_t off = 0; off < ours.size(); off += tr.block_bytes) {
        ++s.blocks;
        s.same_blocks += std::memcmp(ours.data() + off, ti.data + off, tr.block_bytes) == 0;
      }
    }
  }

  std::printf("\n%-7s %7s %12s %12s %12s %10s %9s\n", "type", "tensors", "file nRMSE", "max", "ours nRMSE", "ours/file",
              "same blk");
  for (const auto& [type, s] : stats) {
    std::printf("%-7s %7d %12.6f %12.6f", std::string(type_name(type)).c_str(), s.tensors, s.file_err_sum / s.tensors,
                s.file_err_max);
    if (s.requantized > 0) {
      const double ratio = s.file_err_sum_rq > 0 ? s.ours_err_sum / s.file_err_sum_rq : 1.0;
      std::printf(" %12.6f %10.4f %8.2f%%", s.ours_err_sum / s.requantized, ratio,
                  100.0 * static_cast<double>(s.same_blocks) / static_cast<double>(s.blocks));
      // Our quantizers follow llama.cpp's reference algorithms: the error must be as good within 2%, and for
      // the float/legacy/K-quant families (floating-point evaluation order aside) the blocks the same bytes.
      EXPECT_LE(ratio, 1.02) << type_name(type);
      if (!is_iq_family(type)) {
        EXPECT_GE(static_cast<double>(s.same_blocks), 0.99 * static_cast<double>(s.blocks)) << type_name(type);
      }
    }
    std::printf("\n");
  }
  if (skipped_iq > 0) std::printf("(%d IQ-family tensors skipped: not in this build)\n", skipped_iq);
  // The shared set covers these types; each must have been checked against a master.
  for (Type t : {Type::F16, Type::BF16, Type::Q4_0, Type::Q4_1, Type::Q5_0, Type::Q5_1, Type::Q8_0, Type::Q2_K,
                 Type::Q3_K, Type::Q4_K, Type::Q5_K, Type::Q6_K}) {
    EXPECT_GT(stats[t].tensors, 0) << type_name(t);
  }
}

}  // namespace
}  // namespace rf::quant
