#include "model/golden.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

namespace rf::test {

std::optional<Golden> load_golden(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  const auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return std::nullopt;
  Golden g;
  g.prompt = j.value("prompt", "");
  g.tokens = j.at("tokens").get<std::vector<int>>();
  g.n_vocab = j.at("n_vocab").get<int>();
  g.logits = j.at("logits").get<std::vector<std::vector<float>>>();
  g.greedy = j.at("greedy").get<std::vector<int>>();
  g.greedy_text = j.value("greedy_text", "");
  g.greedy_logits = j.at("greedy_logits").get<std::vector<std::vector<float>>>();
  return g;
}

double nrmse(const float* a, const std::vector<float>& b) {
  double mean = 0.0;
  for (float v : b) mean += v;
  mean /= static_cast<double>(b.size());
  double var = 0.0, err = 0.0;
  for (size_t i = 0; i < b.size(); ++i) {
    var += (b[i] - mean) * (b[i] - mean);
    err += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
  }
  return std::sqrt(err / static_cast<double>(b.size())) / std::sqrt(var / static_cast<double>(b.size()));
}

int argmax(const float* v, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i) {
    if (v[i] > v[best]) best = i;
  }
  return best;
}

bool argmax_agrees(const float* ours, const std::vector<float>& golden, double gap, double* golden_gap) {
  const int n = static_cast<int>(golden.size());
  const int a = argmax(ours, n), b = argmax(golden.data(), n);
  double mean = 0.0, var = 0.0;
  for (float v : golden) mean += v;
  mean /= n;
  for (float v : golden) var += (v - mean) * (v - mean);
  const double sd = std::sqrt(var / n);
  *golden_gap = (golden[static_cast<size_t>(b)] - golden[static_cast<size_t>(a)]) / sd;
  return a == b || *golden_gap <= gap;
}

double golden_tolerance(const std::string& name) {
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  if (has("-f32") || has("-F16") || has("stories260K")) return 2e-3;
  if (has("-BF16")) return 1e-2;
  return 5e-2;
}

SequenceFeeder::SequenceFeeder(model::Model& m) : model_(m) {
  kv::KvOptions o;
  o.n_slots = 256;
  o.block_size = 16;
  cache_ = kv::KvCache::create(m.backend(), m.kv_shape(), o).value();
  seq_ = cache_->add_sequence();
}

std::vector<float> SequenceFeeder::feed(const std::vector<int>& tokens) {
  backend::Batch b;
  const int32_t start = cache_->length(seq_);
  EXPECT_TRUE(cache_->reserve(seq_, static_cast<int32_t>(tokens.size())).ok());
  for (size_t i = 0; i < tokens.size(); ++i) {
    b.tokens.push_back(tokens[i]);
    b.positions.push_back(start + static_cast<int32_t>(i));
    b.seq.push_back(0);
    b.output_rows.push_back(static_cast<int32_t>(i));
  }
  b.block_tables.push_back(cache_->block_table(seq_));
  std::vector<float> logits;
  const Status s = model_.forward(std::move(b), *cache_, &logits);
  EXPECT_TRUE(s.ok()) << s.message();
  cache_->advance(seq_, static_cast<int32_t>(tokens.size()));
  return logits;
}

}  // namespace rf::test
