// Forward-pass parity with llama.cpp: for every model in ../shared/models, both golden prompts and both the scalar
// and the selected (SIMD) kernel table, the logits of a one-batch prefill and of teacher-forced decode steps (the
// `greedy` tokens fed one at a time through the paged KV cache) agree with ../shared/golden/logits within the
// README tolerances, with equal argmax everywhere except where activation rounding ties explain it (see
// model/rounding_ties.h for why those exist and how the test proves them).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/simd_kernels.h"
#include "model/golden.h"
#include "model/golden_trace.h"
#include "model/model.h"
#include "support/shared_data.h"

namespace rf {
namespace {

const char* const kModels[] = {
    "stories260K",          "fortune-qwen2-f32",    "fortune-qwen2-Q8_0",   "fortune-qwen2-Q4_K_M",
    "synth-llama-f32",      "synth-llama-F16",      "synth-llama-BF16",     "synth-llama-Q8_0",
    "synth-llama-Q4_0",     "synth-llama-Q4_1",     "synth-llama-Q5_0",     "synth-llama-Q5_1",
    "synth-llama-Q2_K",     "synth-llama-Q3_K_M",   "synth-llama-Q4_K_M",   "synth-llama-Q5_K_M",
    "synth-llama-Q6_K",     "synth-llama-IQ4_NL",   "synth-llama-IQ4_XS",   "synth-qwen2-f32",
    "synth-qwen2-Q8_0",     "synth-qwen2-Q4_K_M",   "synth-mixtral-f32",    "synth-mixtral-Q8_0",
    "synth-mixtral-Q4_K_M",
};

// Relative change an activation may need to cross its rounding boundary and still count as a tie that float noise
// decides: our and llama.cpp's F32 activations agree to ~1e-7 relative before the 8-bit / F16 roundings, a little
// more after attention's F16 probabilities; every tie found on the shared models needs under 8e-5.
constexpr double kMaxTieChange = 1e-4;
// A row is "back to noise level" under this nRMSE (untied rows sit at ~2e-6 for quantized weights).
constexpr double kEventNrmse = 1e-4;
constexpr int kMaxTiesPerPrompt = 6;
// Candidates tried per event: a prefill pass has thousands (all prompt rows), so the closest 48; a decode step has
// tens to a few hundred and each trial is cheap, so all of them (synth-mixtral-Q8_0 p1 on the scalar table needs
// a 3.8e-5 tie that is not among the closest 48).
constexpr int kMaxCandidatesPerPrefillEvent = 48;
constexpr int kMaxCandidatesPerDecodeEvent = 4096;
// Only where the tie search is skipped (ROCMFORGE_SLOW_TESTS_SKIP, the sanitizer run) may an argmax differ without
// the search's proof: when the golden's top two logits lie within this many standard deviations of its row
// (quantized weights only; F32/F16/BF16 rows must agree exactly). With the search on, every difference must be
// explained by ties; none is left unexplained on the shared models since attention sums in llama.cpp's order.
double near_tie_sd(const std::string& name) { return test::golden_tolerance(name) >= 5e-2 ? 0.05 : 0.0; }

struct TableCase {
  const char* model;
  bool simd;  // kernels() (the table users get) rather than scalar_kernels()
};

std::vector<TableCase> all_cases() {
  std::vector<TableCase> v;
  for (const char* m : kModels) v.push_back({m, false});
  for (const char* m : kModels) v.push_back({m, true});
  return v;
}

class GoldenLogitsTest : public ::testing::TestWithParam<TableCase> {};

// Every row within the README tolerance; the argmax equal at every row, or, where it is not, the disagreement
// shown to be nothing but activation rounding ties: flipping at most a few 8-bit / F16 roundings that sit within
// kMaxTieChange of their boundary brings every row of the prompt back to kEventNrmse with equal argmax (rows whose
// remaining deviation provably stays in the row, equal argmax, count as isolated: see TieExplanation).
TEST_P(GoldenLogitsTest, PrefillAndTeacherForcedDecodeMatchLlamaCpp) {
  const std::string name = GetParam().model;
  RF_REQUIRE_SHARED(model_path, "models/" + name + ".gguf");
  const backend::cpu::KernelTable& table =
      GetParam().simd ? backend::cpu::kernels() : backend::cpu::scalar_kernels();
  backend::cpu::CpuBackend be(2, &table);
  test::TieBackend ties(be);
  auto model = model::Model::load(model_path, ties);
  ASSERT_TRUE(model.ok()) << model.error_message();
  const double tol = test::golden_tolerance(name);
  const double kNearTieSd = near_tie_sd(name);
  double worst_prefill = 0.0, worst_decode = 0.0;
  int mismatches = 0, explained_ties = 0, unexplained = 0;
  for (const char* prompt : {"p1", "p2"}) {
    RF_REQUIRE_SHARED(golden_path, "golden/logits/" + name + "." + prompt + ".json");
    const auto g = test::load_golden(golden_path);
    ASSERT_TRUE(g.has_value()) << golden_path;
    ASSERT_EQ(g->n_vocab, (*model)->hparams().n_vocab);
    const test::Trace t = test::run_trace(**model, *g);
    ASSERT_EQ(t.nrmse.size(), g->tokens.size() + g->greedy.size());
    worst_prefill = std::max(worst_prefill, t.worst_prefill());
    worst_decode = std::max(worst_decode, t.worst_decode());
    for (size_t r = 0; r < t.nrmse.size(); ++r) EXPECT_LE(t.nrmse[r], tol) << name << " " << prompt << " " << t.label(r);
    if (t.argmax_mismatches() == 0) continue;
    mismatches += t.argmax_mismatches();
    test::TieExplanation ex;
    if (std::getenv("ROCMFORGE_SLOW_TESTS_SKIP") == nullptr) {
      ex = test::explain_by_rounding_ties(**model, ties, *g, kEventNrmse, kMaxTieChange, kMaxTiesPerPrompt,
                                          kMaxCandidatesPerPrefillEvent, kMaxCandidatesPerDecodeEvent);
    }
    std::string found;
    for (const auto& tie : ex.ties) found += "\n  tie: " + tie.describe();
    for (size_t row : ex.isolated) {
      found += "\n  isolated (equal argmax, the next row back at noise or none): " + ex.trace.label(row) + " nRMSE " +
               std::to_string(ex.trace.nrmse[row]);
    }
    explained_ties += static_cast<int>(ex.ties.size());
    if (ex.explained) {
      std::printf("[golden] %s %s: argmax differences explained by%s\n", name.c_str(), prompt, found.c_str());
      continue;
    }
    // Not reduced to ties the search can flip: a real difference from llama.cpp's arithmetic (or a tie inside
    // attention's F16 probabilities, which cannot be nudged from outside the backend) - a failure. Without the
    // search only a near-tie of the golden's own top two logits may differ.
    ++unexplained;
    const bool searched = !ex.trace.nrmse.empty();
    std::printf("[golden] %s %s: argmax differences NOT explained by rounding ties (first unexplained: %s)%s\n",
                name.c_str(), prompt,
                searched ? ex.trace.label(ex.first_unexplained(kEventNrmse)).c_str() : "search skipped", found.c_str());
    if (searched) {
      ADD_FAILURE() << name << " " << prompt
                    << ": argmax differs from llama.cpp's where no rounding tie explains it (first "
                    << ex.trace.label(ex.first_unexplained(kEventNrmse)) << ")";
      continue;
    }
    for (size_t r = 0; r < t.nrmse.size(); ++r) {
      if (t.argmax_equal[r]) continue;
      const bool decode = r >= t.n_prompt;
      const auto& golden_row = decode ? g->greedy_logits[r - t.n_prompt] : g->logits[r];
      double gap = 0.0;
      EXPECT_TRUE(test::argmax_agrees(t.mismatched_rows.at(r).data(), golden_row, kNearTieSd, &gap))
          << name << " " << prompt << " " << t.label(r) << ": argmax differs, golden gap " << gap << " sd";
    }
  }
  std::printf("[golden] %-22s %-6s worst nRMSE prefill %.2e decode %.2e (tolerance %.0e), argmax mismatches %d "
              "(ties flipped to explain them: %d, prompts not explained by ties: %d)\n",
              name.c_str(), table.isa.c_str(), worst_prefill, worst_decode, tol, mismatches, explained_ties, unexplained);
  RecordProperty("worst_nrmse_prefill", std::to_string(worst_prefill));
  RecordProperty("worst_nrmse_decode", std::to_string(worst_decode));
}

INSTANTIATE_TEST_SUITE_P(AllSharedModels, GoldenLogitsTest, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<TableCase>& p) {
                           std::string s = std::string(p.param.model) + (p.param.simd ? "_selected" : "_scalar");
                           std::replace(s.begin(), s.end(), '-', '_');
                           return s;
                         });

// The decode step that once differed (fortune-qwen2-Q8_0 p1 step 5 on AVX-512, a near-tied argmax: the 32-wide
// q . k of an earlier step was summed in float lanes where llama.cpp sums it in double): now every argmax of both
// prompts agrees on every kernel table with no rounding tie flipped.
TEST(GoldenLogits, FortuneQwen2Q8_0ArgmaxAgreesEverywhereOnEveryTable) {
  RF_REQUIRE_SHARED(model_path, "models/fortune-qwen2-Q8_0.gguf");
  for (const char* prompt : {"p1", "p2"}) {
    RF_REQUIRE_SHARED(golden_path, std::string("golden/logits/fortune-qwen2-Q8_0.") + prompt + ".json");
    const auto g = test::load_golden(golden_path);
    ASSERT_TRUE(g.has_value());
    for (const backend::cpu::KernelTable* table : backend::cpu::available_kernel_tables()) {
      backend::cpu::CpuBackend be(2, table);
      auto model = model::Model::load(model_path, be);
      ASSERT_TRUE(model.ok()) << model.error_message();
      const test::Trace t = test::run_trace(**model, *g);
      EXPECT_EQ(t.argmax_mismatches(), 0)
          << prompt << " " << table->isa << ": first differing row "
          << t.label(static_cast<size_t>(std::find(t.argmax_equal.begin(), t.argmax_equal.end(), false) -
                                         t.argmax_equal.begin()));
    }
  }
}

TEST(GoldenLogits, EveryGoldenFileHasATestedModel) {
  RF_REQUIRE_SHARED(dir, "golden/logits");
  const std::set<std::string> tested(std::begin(kModels), std::end(kModels));
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::string f = entry.path().filename().string();
    if (entry.path().extension() != ".json") continue;
    const std::string model = f.substr(0, f.find(".p"));
    EXPECT_TRUE(tested.count(model)) << "golden file " << f << " has no model in the test list";
  }
}

TEST(GoldenLogits, Stories260KGreedyContinuationMatchesExactly) {
  RF_REQUIRE_SHARED(model_path, "models/stories260K.gguf");
  RF_REQUIRE_SHARED(golden_path, "golden/logits/stories260K.p1.json");
  const auto g = test::load_golden(golden_path);
  ASSERT_TRUE(g.has_value());
  for (const auto* table : {&backend::cpu::scalar_kernels(), &backend::cpu::kernels()}) {
    backend::cpu::CpuBackend be(2, table);
    auto model = model::Model::load(model_path, be);
    ASSERT_TRUE(model.ok()) << model.error_message();
    EXPECT_EQ(test::greedy_continuation(**model, g->tokens, g->greedy.size()), g->greedy) << table->isa;
  }
}

}  // namespace
}  // namespace rf
