#pragma once

namespace CLI {
class App;
}

namespace rf::cli {
void register_synth_command(CLI::App& app, int& exit_code);
}  // namespace rf::cli
