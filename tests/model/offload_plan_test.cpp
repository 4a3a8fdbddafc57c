// The automatic --n-gpu-layers arithmetic (model::plan_offload) on made-up memory figures, and the byte counts
// model::offload_budget reads from a real file.
#include "model/offload_plan.h"

#include <gtest/gtest.h>

#include <numeric>
#include <string>

#include "model/hparams.h"
#include "support/shared_data.h"

namespace rf::test {
namespace {

constexpr size_t kMiB = size_t{1} << 20;
constexpr size_t kGiB = size_t{1} << 30;

// 32 layers of 200 MiB, 250 MiB embeddings, 260 MiB output, 16 MiB KV per layer, 100 MiB layer workspace and
// 30 MiB of logits: everything together is 32 * 216 + 250 + 100 + 260 + 30 = 7552 MiB.
model::OffloadBudget seven_b_like(size_t free_bytes) {
  model::OffloadBudget b;
  b.free_bytes = free_bytes;
  b.reserve_bytes = 512 * kMiB;
  b.layer_weight_bytes.assign(32, 200 * kMiB);
  b.input_bytes = 250 * kMiB;
  b.output_bytes = 260 * kMiB;
  b.kv_bytes_per_layer = 16 * kMiB;
  b.layer_workspace_bytes = 100 * kMiB;
  b.output_workspace_bytes = 30 * kMiB;
  return b;
}

TEST(OffloadPlan, BytesOfTheFirstNLayersIncludeWhatComesWithThem) {
  const auto b = seven_b_like(0);
  EXPECT_EQ(model::offload_bytes(b, 0), 0u);
  EXPECT_EQ(model::offload_bytes(b, 1), (250 + 100 + 216) * kMiB);
  EXPECT_EQ(model::offload_bytes(b, 31), (250 + 100 + 31 * 216) * kMiB);
  EXPECT_EQ(model::offload_bytes(b, 32), 7552 * kMiB);  // the output layer only with all layers
  EXPECT_EQ(model::offload_bytes(b, 99), 7552 * kMiB);  // clamped
}

TEST(OffloadPlan, EverythingFitsOnALargeGpu) {
  const auto p = model::plan_offload(seven_b_like(79 * kGiB));
  EXPECT_EQ(p.n_gpu_layers, 32);
  EXPECT_EQ(p.gpu_bytes, 7552 * kMiB);
  EXPECT_NE(p.reason.find("all 32 layers and the output fit"), std::string::npos) << p.reason;
}

TEST(OffloadPlan, ASmallGpuTakesTheLayersThatFitAfterTheReserve) {
  // 4 GiB free - 512 MiB reserve = 3584 MiB; 350 MiB fixed + 216 MiB per layer: 14 layers (3374), 15 do not (3590).
  const auto p = model::plan_offload(seven_b_like(4 * kGiB));
  EXPECT_EQ(p.n_gpu_layers, 14);
  EXPECT_EQ(p.gpu_bytes, (350 + 14 * 216) * kMiB);
  EXPECT_NE(p.reason.find("14 of 32 layers fit"), std::string::npos) << p.reason;
}

TEST(OffloadPlan, ALayerThatFitsExactlyIsTaken) {
  const size_t need = model::offload_bytes(seven_b_like(0), 20);
  EXPECT_EQ(model::plan_offload(seven_b_like(need + 512 * kMiB)).n_gpu_layers, 20);
  EXPECT_EQ(model::plan_offload(seven_b_like(need + 512 * kMiB - 1)).n_gpu_layers, 19);
}

TEST(OffloadPlan, WhenOnlyTheOutputLayerDoesNotFitTheLastLayerStaysOnTheCpu) {
  // Room for 32 layers but not for the output that would come with them: 31 layers, the output stays on the CPU.
  const size_t all_layers = (350 + 32 * 216) * kMiB;
  const auto p = model::plan_offload(seven_b_like(all_layers + 512 * kMiB + 100 * kMiB));
  EXPECT_EQ(p.n_gpu_layers, 31);
}

TEST(OffloadPlan, NothingFitsWhenTheReserveTakesAllFreeMemory) {
  const auto p = model::plan_offload(seven_b_like(300 * kMiB));  // less than the reserve
  EXPECT_EQ(p.n_gpu_layers, 0);
  EXPECT_EQ(p.gpu_bytes, 0u);
  EXPECT_NE(p.reason.find("not one layer fits"), std::string::npos) << p.reason;
  EXPECT_EQ(model::plan_offload(seven_b_like(512 * kMiB + 565 * kMiB)).n_gpu_layers, 0);  // one layer needs 566
  EXPECT_EQ(model::plan_offload(seven_b_like(512 * kMiB + 566 * kMiB)).n_gpu_layers, 1);
}

TEST(OffloadPlan, UnevenLayersAreCountedOneByOne) {
  auto b = seven_b_like(0);
  b.layer_weight_bytes = {100 * kMiB, 900 * kMiB, 100 * kMiB, 100 * kMiB};
  b.kv_bytes_per_layer = 0;
  b.input_bytes = 0;
  b.layer_workspace_bytes = 0;
  b.reserve_bytes = 0;
  b.free_bytes = 999 * kMiB;  // layer 0 fits, layers 0-1 need 1000 MiB
  EXPECT_EQ(model::plan_offload(b).n_gpu_layers, 1);
  b.free_bytes = 1000 * kMiB;
  EXPECT_EQ(model::plan_offload(b).n_gpu_layers, 2);
}

TEST(OffloadPlan, ByteCountsOfARealFile) {
  RF_REQUIRE_SHARED(path, "models/fortune-qwen2-Q8_0.gguf");
  auto f = gguf::File::open(path);
  ASSERT_TRUE(f.ok()) << f.error_message();
  model::OffloadRequest r;
  r.kv_tokens = 1000;
  r.batch_tokens = 64;
  r.output_rows = 3;
  auto b = model::offload_budget(**f, r);
  ASSERT_TRUE(b.ok()) << b.error_message();
  auto hp = model::read_hparams(**f, "qwen2");
  ASSERT_TRUE(hp.ok());
  ASSERT_EQ(b->layer_weight_bytes.size(), static_cast<size_t>(hp->n_layer));
  auto aligned = [](size_t n) { return (n + 255) / 256 * 256; };
  size_t want_layers = 0, want_other = 0;
  for (const auto& t : (*f)->tensors()) (t.name.rfind("blk.", 0) == 0 ? want_layers : want_other) += aligned(t.n_bytes);
  EXPECT_EQ(std::accumulate(b->layer_weight_bytes.begin(), b->layer_weight_bytes.end(), size_t{0}), want_layers);
  EXPECT_EQ(b->input_bytes + b->output_bytes, want_other);
  EXPECT_EQ(b->input_bytes, aligned((*f)->find_tensor("token_embd.weight")->n_bytes));
  const size_t kv_row = static_cast<size_t>(hp->n_head_kv) * static_cast<size_t>(hp->head_dim_k + hp->head_dim_v);
  EXPECT_EQ(b->kv_bytes_per_layer, kv_row * 2 * 1000);  // F16
  const auto n_vocab = static_cast<size_t>((*f)->find_tensor("token_embd.weight")->ne[1]);
  EXPECT_EQ(b->output_workspace_bytes, (static_cast<size_t>(hp->n_embd) + n_vocab) * 4 * 3);
  EXPECT_GT(b->layer_workspace_bytes, static_cast<size_t>(hp->n_embd) * 4 * 64);
  r.kv_tokens = 0;  // the model's context length
  EXPECT_EQ(model::offload_budget(**f, r)->kv_bytes_per_layer, kv_row * 2 * static_cast<size_t>(hp->n_ctx_train));
}

}  // namespace
}  // namespace rf::test
