// `rocmforge synth ... -o OUT.gguf`
#include "cli/synth_command.h"

#include <chrono>
#include <cstdio>

namespace rf::cli {

int run_synth(const SynthOptions& opts) {
  const auto t0 = std::chrono::steady_clock::now();
  Status s = write_synth_model(opts);
  if (!s.ok()) {
    std::fprintf(stderr, "rocmforge: %s\n", s.message().c_str());
    return 1;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "synth: wrote %s in %.1f s\n", opts.output.c_str(), secs);
  return 0;
}

}  // namespace rf::cli
