// A tiny random-weight llama model for tests that need a real forward pass (engine, server): 2 layers, 64-wide,
// grouped-query attention, Q8_0 matrices (activations are quantized per row, as in real use). Written once per test
// process and name into the test temp folder, removed at exit. Header-only: the including test links
// rf_cli_commands (the synth writer).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

#include "cli/synth.h"

namespace rf::test {

inline std::string tiny_synth_model(const std::string& name, int64_t n_vocab, int64_t n_ctx) {
  static std::mutex mu;
  static auto* written = new std::map<std::string, std::string>();  // name -> path (leaked: read at exit)
  std::lock_guard lock(mu);
  if (auto it = written->find(name); it != written->end()) return it->second;
  const std::string path = ::testing::TempDir() + "/rf_" + name + "_" + std::to_string(::getpid()) + ".gguf";
  cli::SynthOptions o;
  o.n_embd = 64;
  o.n_ff = 128;
  o.n_layer = 2;
  o.n_head = 4;
  o.n_head_kv = 2;
  o.n_vocab = n_vocab;
  o.n_ctx = n_ctx;
  o.type = "Q8_0";
  o.threads = 2;
  o.output = path;
  const Status s = cli::write_synth_model(o);
  EXPECT_TRUE(s.ok()) << s.message();
  if (written->empty()) {
    std::atexit([] {
      for (const auto& [n, p] : *written) std::remove(p.c_str());
    });
  }
  written->emplace(name, path);
  return path;
}

}  // namespace rf::test
