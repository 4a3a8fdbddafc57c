// Helpers shared by the fuzz targets: locating the optional reference data (../shared) and a strict UTF-8 check.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace rf::fuzz {

// Aborts the process so that libFuzzer records the input as a crash.
inline void check(bool cond) {
  if (!cond) __builtin_trap();
}

// $ROCMFORGE_SHARED, else <source>/../shared; nullopt when absent. The fuzzers use it only to widen their inputs
// (real vocabularies and templates) and run the same checks without it.
inline std::optional<std::filesystem::path> shared_dir() {
  std::error_code ec;
  if (const char* env = std::getenv("ROCMFORGE_SHARED"); env != nullptr && *env != '\0') {
    if (std::filesystem::is_directory(env, ec)) return std::filesystem::path(env);
    return std::nullopt;
  }
#ifdef RF_FUZZ_SOURCE_DIR
  const std::filesystem::path dir = std::filesystem::path(RF_FUZZ_SOURCE_DIR) / ".." / "shared";
  if (std::filesystem::is_directory(dir, ec)) return dir.lexically_normal();
#endif
  return std::nullopt;
}

// Well-formed UTF-8 per RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF.
inline bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<uint8_t>(s[i]);
    size_t len = 0;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b < 0x80) {
      len = 1;
    } else if (b >= 0xC2 && b <= 0xDF) {
      len = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      len = 3;
      if (b == 0xE0) lo = 0xA0;
      if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4;
      if (b == 0xF0) lo = 0x90;
      if (b == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto c = static_cast<uint8_t>(s[i + k]);
      if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xBF)) return false;
    }
    i += len;
  }
  return true;
}

}  // namespace rf::fuzz
