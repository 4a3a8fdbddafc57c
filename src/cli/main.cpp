// rocmforge: the command-line front end. Each subcommand lives in its own module and registers itself here.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "chat/render_template_command.h"
#include "cli/bench_command.h"
#include "cli/inspect_command.h"
#include "cli/synth_command.h"
#include "runtime/generate_command.h"
#include "server/serve_command.h"
#include "tokenizer/tokenize_command.h"

int main(int argc, char** argv) {
  CLI::App app{"rocmforge: LLM inference for GGUF models on AMD (ROCm/HIP), NVIDIA (CUDA) and CPU"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "rocmforge " ROCMFORGE_VERSION);
  int exit_code = 0;
  rf::cli::register_inspect_command(app, exit_code);
  rf::cli::register_bench_command(app, exit_code);
  rf::cli::register_synth_command(app, exit_code);
  rf::runtime::register_generate_command(app, exit_code);
  rf::tokenizer::register_tokenize_command(app, exit_code);
  rf::server::register_serve_command(app, exit_code);
  rf::chat::register_render_template_command(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 1;
  }
  return exit_code;
}
