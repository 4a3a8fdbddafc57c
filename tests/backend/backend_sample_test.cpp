// Backend::sample's default implementation (the CPU backend and hybrid placements): every requested row is
// downloaded and handed to the host sampler once, in request order, with its own row of logits.
#include <gtest/gtest.h>

#include <vector>

#include "backend/cpu/cpu_backend.h"

namespace rf::backend {
namespace {

TEST(BackendSample, DefaultDownloadsTheRequestedRowsAndSamplesThemOnTheHost) {
  cpu::CpuBackend be(1);
  constexpr int64_t kVocab = 5, kRows = 4;
  std::vector<float> logits(kVocab * kRows);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = static_cast<float>(i);
  const Tensor t = make_tensor(logits.data(), quant::Type::F32, kVocab, kRows);
  std::vector<SampleRow> rows(3);
  rows[0].row = 2;
  rows[1].row = 0;
  rows[2].row = 3;
  rows[2].u = 0.25;
  int calls = 0;
  const HostSampleFn host = [&](std::span<const size_t> which, const float* lg, int32_t* ids) {
    ++calls;
    ASSERT_EQ(which.size(), rows.size());
    for (size_t j = 0; j < which.size(); ++j) {
      EXPECT_EQ(which[j], j);
      // The row's first logit names it: row r starts at r * kVocab.
      ids[which[j]] =
          static_cast<int32_t>(lg[j * kVocab] / kVocab) * 10 + static_cast<int32_t>(lg[j * kVocab + 4]) % kVocab;
    }
  };
  std::vector<int32_t> ids(rows.size(), -1);
  ASSERT_TRUE(be.sample(t, rows, host, ids.data()).ok());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(ids, (std::vector<int32_t>{24, 4, 34}));
}

TEST(BackendSample, NoRowsCallsNothing) {
  cpu::CpuBackend be(1);
  std::vector<float> logits(8, 0.0f);
  const Tensor t = make_tensor(logits.data(), quant::Type::F32, 8, 1);
  bool called = false;
  const HostSampleFn host = [&](std::span<const size_t>, const float*, int32_t*) { called = true; };
  EXPECT_TRUE(be.sample(t, {}, host, nullptr).ok());
  EXPECT_FALSE(called);
}

}  // namespace
}  // namespace rf::backend
