#include "support/shared_data.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace rf::test {

std::string source_dir() {
  if (const char* s = std::getenv("ROCMFORGE_SOURCE_DIR")) return s;
  return ROCMFORGE_SOURCE_DIR_DEFAULT;
}

std::optional<std::string> shared_dir() {
  namespace fs = std::filesystem;
  std::string dir;
  if (const char* s = std::getenv("ROCMFORGE_SHARED")) {
    dir = s;
  } else {
    dir = source_dir() + "/../shared";
  }
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return std::nullopt;
  return fs::weakly_canonical(dir, ec).string();
}

std::optional<std::string> shared_path(const std::string& rel) {
  auto dir = shared_dir();
  if (!dir) return std::nullopt;
  std::string p = *dir + "/" + rel;
  std::error_code ec;
  if (!std::filesystem::exists(p, ec)) return std::nullopt;
  return p;
}

std::vector<unsigned char> read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace rf::test
