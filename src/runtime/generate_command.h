// `rocmforge generate -p TEXT | --tokens 1,2,3 [-m MODEL.gguf] [--json] ...`: streams the generated text to stdout,
// or prints one JSON object at the end with --json.
#pragma once

#include <string>

#include "runtime/generate.h"

namespace rf::runtime {

struct GenerateCommandOptions {
  GenerateOptions options;  // model_path empty: the built-in model
  std::string tokens;       // --tokens: comma-separated ids, parsed into options.prompt_tokens
  std::string device = "auto";
  bool json = false;
};

// Runs the command; returns the process exit status (errors go to stderr).
int run_generate_command(const GenerateCommandOptions& opts);

}  // namespace rf::runtime
