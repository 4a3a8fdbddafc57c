// `rocmforge generate`: CLI11 registration of the generate subcommand (wired into main by the CLI).
#pragma once

#include <CLI/CLI.hpp>

namespace rf::runtime {

// Adds the subcommand to `app`; when it runs, its exit status is stored in exit_code.
void register_generate_command(CLI::App& app, int& exit_code);

}  // namespace rf::runtime
