// Locating ../shared (reference data). Tests that need it SKIP when it is absent.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace rf::test {

// $ROCMFORGE_SHARED, else <source>/../shared; nullopt when that folder does not exist.
std::optional<std::string> shared_dir();

// Full path of shared/<rel>, or nullopt when missing.
std::optional<std::string> shared_path(const std::string& rel);

// The repository root (for models/default.gguf and the like).
std::string source_dir();

// Whole file as bytes (empty on error).
std::vector<unsigned char> read_file_bytes(const std::string& path);

}  // namespace rf::test

// Skips the current test with a clear message when shared/<rel> is absent; otherwise defines `var`.
#define RF_REQUIRE_SHARED(var, rel)                                                        \
  auto var##_opt = ::rf::test::shared_path(rel);                                           \
  if (!var##_opt) GTEST_SKIP() << "shared data '" << (rel) << "' not found (set ROCMFORGE_SHARED)"; \
  const std::string var = *var##_opt
