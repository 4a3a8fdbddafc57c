// `rocmforge inspect MODEL.gguf [--json]`: header, metadata, tensor table, totals per type, hyper-parameters.
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace rf::cli {

struct InspectOptions {
  std::string model;
  bool json = false;
  size_t max_array_items = 8;  // long arrays are summarized to this many leading items
};

int run_inspect(const InspectOptions& opts);
void register_inspect_command(CLI::App& app, int& exit_code);

}  // namespace rf::cli
