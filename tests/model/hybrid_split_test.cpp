// Hybrid execution (model::Placement) with two CPU backends standing in for the GPU and the CPU: a model split
// after any layer gives bit-for-bit the logits of the same model on one backend (prefill, decode steps, a mixed
// two-sequence batch), with each layer's weights, KV cache and ops on its own backend, the embeddings where layer
// 0 runs and the output layer on the first backend only when every layer is there.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "model/hybrid_support.h"
#include "model/model.h"
#include "model/probe_backend.h"
#include "support/shared_data.h"

namespace rf::test {
namespace {

// "tied:" models are the shared model rewritten with tied embeddings and rope frequency factors.
const char* const kModels[] = {"stories260K", "fortune-qwen2-Q8_0", "synth-mixtral-Q8_0", "synth-llama-Q4_K_M",
                               "tied:stories260K"};

int layer_of(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return -1;
  return std::stoi(name.substr(4));
}

// The weights each backend should load for a split after n_first of n_layer layers.
void expected_loads(const gguf::File& f, int n_first, int n_layer, std::set<std::string>* first,
                    std::set<std::string>* rest) {
  const bool all = n_first == n_layer;
  const bool tied = f.find_tensor("output.weight") == nullptr;
  for (const auto& t : f.tensors()) {
    const int il = layer_of(t.name);
    if (il >= 0) {
      (il < n_first ? first : rest)->insert(t.name);
    } else if (t.name == "token_embd.weight") {
      (n_first > 0 ? first : rest)->insert(t.name);
      if (tied) (all ? first : rest)->insert(t.name);  // the output reads it
    } else if (t.name == "rope_freqs.weight") {
      if (n_first > 0) first->insert(t.name);
      if (!all) rest->insert(t.name);
    } else if (t.name == "output_norm.weight" || t.name == "output.weight") {
      (all ? first : rest)->insert(t.name);
    }
  }
}

Expected<std::shared_ptr<gguf::File>> open_model(const std::string& name, const std::string& path,
                                                 std::vector<uint8_t>* bytes) {
  if (name.rfind("tied:", 0) == 0) return tied_with_rope_freqs(path, bytes);
  return gguf::File::open(path);
}

// Index of the first element that differs bitwise, or -1.
int64_t first_bit_difference(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return static_cast<int64_t>(i);
  }
  return -1;
}

class HybridSplit : public ::testing::TestWithParam<const char*> {};

TEST_P(HybridSplit, LogitsMatchTheSingleBackendBitForBitAtEverySplit) {
  const std::string name = GetParam();
  const std::string base = name.rfind("tied:", 0) == 0 ? name.substr(5) : name;
  RF_REQUIRE_SHARED(path, "models/" + base + ".gguf");
  std::vector<uint8_t> bytes;
  auto file = open_model(name, path, &bytes);
  ASSERT_TRUE(file.ok()) << file.error_message();

  backend::cpu::CpuBackend cpu_ref(2), cpu_a(2), cpu_b(2);
  auto ref = model::Model::load(*file, cpu_ref);
  ASSERT_TRUE(ref.ok()) << ref.error_message();
  const int n_layer = (*ref)->hparams().n_layer;
  const auto script = default_script((*ref)->hparams().n_vocab);
  auto ref_cache = make_cache(**ref);
  ASSERT_NE(ref_cache, nullptr);
  auto want = run_script(**ref, *ref_cache, script);
  ASSERT_TRUE(want.ok()) << want.error_message();

  std::set<int> splits = {0, 1, n_layer / 2, n_layer};
  for (int n_first : splits) {
    SCOPED_TRACE(name + " split after " + std::to_string(n_first) + " of " + std::to_string(n_layer) + " layers");
    ProbeBackend a(cpu_a, "probe-a"), b(cpu_b, "probe-b");
    model::Placement p;
    p.first = &a;
    p.rest = &b;
    p.n_first = n_first;
    auto m = model::Model::load(*file, std::move(p));
    ASSERT_TRUE(m.ok()) << m.error_message();
    EXPECT_EQ((*m)->n_first_layers(), n_first);
    for (int il = 0; il < n_layer; ++il) EXPECT_EQ(&(*m)->layer_backend(il), il < n_first ? &a : &b) << il;
    EXPECT_EQ(&(*m)->output_backend(), n_first == n_layer ? &a : &b);
    EXPECT_EQ(&(*m)->backend(), n_first > 0 ? &a : &b);

    std::set<std::string> want_a, want_b;
    expected_loads(**file, n_first, n_layer, &want_a, &want_b);
    const std::set<std::string> got_a(a.loaded().begin(), a.loaded().end());
    const std::set<std::string> got_b(b.loaded().begin(), b.loaded().end());
    EXPECT_EQ(got_a, want_a);
    EXPECT_EQ(got_b, want_b);
    EXPECT_EQ(got_a.size(), a.loaded().size()) << "a weight loaded twice on the first backend";
    EXPECT_EQ(got_b.size(), b.loaded().size()) << "a weight loaded twice on the second backend";

    auto cache = make_cache(**m);
    ASSERT_NE(cache, nullptr);
    for (int il = 0; il < n_layer; ++il) {
      const ProbeBackend& owner = il < n_first ? a : b;
      EXPECT_TRUE(owner.owns(cache->k(il).data) && owner.owns(cache->v(il).data)) << "KV of layer " << il;
    }

    auto got = run_script(**m, *cache, script);
    ASSERT_TRUE(got.ok()) << got.error_message();
    ASSERT_EQ(got->size(), want->size());
    for (size_t s = 0; s < got->size(); ++s) {
      ASSERT_EQ((*got)[s].size(), (*want)[s].size()) << "step " << s;
      const int64_t d = first_bit_difference((*got)[s], (*want)[s]);
      EXPECT_EQ(d, -1) << "step " << s << " logit " << d << ": "
                       << (*got)[s][static_cast<size_t>(std::max<int64_t>(d, 0))] << " vs "
                       << (*want)[s][static_cast<size_t>(std::max<int64_t>(d, 0))];
    }
    EXPECT_EQ(a.ops() > 0, n_first > 0) << a.ops() << " ops on the first backend";
    EXPECT_EQ(b.ops() > 0, n_first < n_layer) << b.ops() << " ops on the second backend";
  }
}

INSTANTIATE_TEST_SUITE_P(SharedModels, HybridSplit, ::testing::ValuesIn(kModels),
                         [](const ::testing::TestParamInfo<const char*>& p) {
                           std::string s = p.param;
                           for (char& c : s) {
                             if (c == '-' || c == ':') c = '_';
                           }
                           return s;
                         });

TEST(HybridPlacement, ASplitWithoutASecondBackendIsAnError) {
  RF_REQUIRE_SHARED(path, "models/stories260K.gguf");
  auto file = gguf::File::open(path);
  ASSERT_TRUE(file.ok());
  backend::cpu::CpuBackend cpu(1);
  model::Placement p;
  p.first = &cpu;
  p.n_first = 2;
  auto m = model::Model::load(*file, std::move(p));
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error_message().find("names no backend for the rest"), std::string::npos) << m.error_message();
}

TEST(HybridPlacement, TheModelKeepsAnOwnedSecondBackendAlive) {
  RF_REQUIRE_SHARED(path, "models/stories260K.gguf");
  auto file = gguf::File::open(path);
  ASSERT_TRUE(file.ok());
  backend::cpu::CpuBackend cpu(1), cpu_ref(1);
  model::Placement p;
  p.first = &cpu;
  p.owned = std::make_unique<backend::cpu::CpuBackend>(1);
  p.rest = p.owned.get();
  p.n_first = 3;
  auto m = model::Model::load(*file, std::move(p));
  ASSERT_TRUE(m.ok()) << m.error_message();
  EXPECT_NE(&(*m)->layer_backend(4), &cpu);
  EXPECT_NE((*m)->placement_summary().find("layers 0-2 on cpu"), std::string::npos) << (*m)->placement_summary();
  EXPECT_NE((*m)->placement_summary().find("layers 3-4 and the output on cpu"), std::string::npos)
      << (*m)->placement_summary();
  auto ref = model::Model::load(*file, cpu_ref);
  ASSERT_TRUE(ref.ok());
  auto c1 = make_cache(**m), c2 = make_cache(**ref);
  const auto script = default_script((*ref)->hparams().n_vocab);
  auto got = run_script(**m, *c1, script), want = run_script(**ref, *c2, script);
  ASSERT_TRUE(got.ok() && want.ok());
  EXPECT_EQ(*got, *want);
}

}  // namespace
}  // namespace rf::test
