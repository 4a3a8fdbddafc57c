// `rocmforge inspect MODEL.gguf [--json]`: header, metadata, tensor table, totals per type, hyper-parameters.
#pragma once

#include <string>

namespace rf::cli {

struct InspectOptions {
  std::string model;  // empty: the built-in model
  bool json = false;
  size_t max_array_items = 8;  // long arrays are summarized to this many leading items
};

// Runs the command; returns the process exit status (errors go to stderr).
int run_inspect(const InspectOptions& opts);

}  // namespace rf::cli
