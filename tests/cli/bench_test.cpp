// `rocmforge bench`: the JSON object the issues ask for (every field present and plausible) on a small synth model,
// batched decode runs (--decode-batches), and bad options as one clear error line.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "cli/cli_run.h"

namespace rf::cli {
namespace {

using rf::test::run_cli;

std::string small_model() {
  static const std::string path = [] {
    const std::string p = ::testing::TempDir() + "bench_test_" + std::to_string(::getpid()) + ".gguf";
    const auto r = run_cli("synth --n-embd 128 --n-ff 256 --n-layer 2 --n-head 4 --n-head-kv 2 --n-vocab 512 "
                           "--type Q8_0 -o " + p);
    EXPECT_EQ(r.status, 0) << r.err;
    return p;
  }();
  return path;
}

TEST(BenchCommand, JsonHasEveryFieldAndTheBatchedDecodeRuns) {
  const auto r = run_cli("bench -m " + small_model() +
                         " -p 16 -n 8 -r 2 --device cpu --threads 1 --decode-batches 2,5 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* key : {"model", "device", "backend", "threads", "pp_tokens_per_s", "pp_tokens_per_s_sd",
                          "tg_tokens_per_s", "tg_tokens_per_s_sd", "weight_bytes_per_token",
                          "memory_bandwidth_bytes_per_s", "tg_roofline_fraction", "load_seconds", "peak_rss_bytes",
                          "batch_invariant"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["threads"], 1);
  EXPECT_EQ(j["batch_invariant"], false);
  EXPECT_GT(j["pp_tokens_per_s"].get<double>(), 0.0);
  EXPECT_GT(j["tg_tokens_per_s"].get<double>(), 0.0);
  EXPECT_GT(j["weight_bytes_per_token"].get<double>(), 0.0);
  EXPECT_GT(j["memory_bandwidth_bytes_per_s"].get<double>(), 0.0);
  // tg reads the weights once per token: the fraction is their rate over the measured bandwidth.
  const double implied = j["tg_tokens_per_s"].get<double>() * j["weight_bytes_per_token"].get<double>() /
                         j["memory_bandwidth_bytes_per_s"].get<double>();
  EXPECT_NEAR(j["tg_roofline_fraction"].get<double>(), implied, 1e-9 + implied * 1e-9);
  ASSERT_TRUE(j["batched_tg"].is_array());
  ASSERT_EQ(j["batched_tg"].size(), 2u);
  EXPECT_EQ(j["batched_tg"][0]["sequences"], 2);
  EXPECT_EQ(j["batched_tg"][1]["sequences"], 5);
  for (const auto& b : j["batched_tg"]) EXPECT_GT(b["tokens_per_s"].get<double>(), 0.0);
}

// --batch-invariant: measured as serve runs by default (the backend computes every row of a batch alike), for
// serve's --parallel (default 8, which picks the GPU's decode kernels), both recorded in the JSON.
TEST(BenchCommand, BatchInvariantRunIsRecorded) {
  auto r = run_cli("bench -m " + small_model() + " -p 8 -n 4 -r 1 --device cpu --threads 1 --batch-invariant --json");
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["batch_invariant"], true);
  EXPECT_EQ(j["parallel"], 8);
  EXPECT_GT(j["tg_tokens_per_s"].get<double>(), 0.0);
  r = run_cli("bench -m " + small_model() +
              " -p 8 -n 4 -r 1 --device cpu --threads 1 --batch-invariant --parallel 32 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["parallel"], 32);
  r = run_cli("bench -m " + small_model() + " -p 8 -n 4 -r 1 --device cpu --parallel 0 --json");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("--parallel"), std::string::npos) << r.err;
}

TEST(BenchCommand, BadDecodeBatchesIsOneClearError) {
  const auto r = run_cli("bench -m " + small_model() + " -p 8 -n 4 -r 1 --device cpu --decode-batches 0 --json");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("--decode-batches"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

}  // namespace
}  // namespace rf::cli
