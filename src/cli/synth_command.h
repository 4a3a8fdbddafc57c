// `rocmforge synth ... -o OUT.gguf`: writes a random-weight model (see synth.h) and says how long it took.
#pragma once

#include "cli/synth.h"

namespace rf::cli {

// Runs the command; returns the process exit status (errors go to stderr).
int run_synth(const SynthOptions& opts);

}  // namespace rf::cli
