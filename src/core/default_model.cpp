#include "core/default_model.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

namespace rf {

std::string default_model_path() {
  namespace fs = std::filesystem;
  if (const char* env = std::getenv("ROCMFORGE_DEFAULT_MODEL"); env && *env) return env;
  std::error_code ec;
  const fs::path candidates[] = {
      fs::path(ROCMFORGE_SOURCE_DIR) / "models" / "default.gguf",
      fs::read_symlink("/proc/self/exe", ec).parent_path() / ".." / ".." / "models" / "default.gguf",
      fs::path("models") / "default.gguf",
  };
  for (const auto& p : candidates) {
    if (fs::is_regular_file(p, ec)) return fs::weakly_canonical(p, ec).string();
  }
  return (fs::path(ROCMFORGE_SOURCE_DIR) / "models" / "default.gguf").string();
}

}  // namespace rf
