// `rocmforge synth ... -o OUT.gguf`
#include "cli/synth_command.h"

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <memory>

#include "cli/synth.h"

namespace rf::cli {

void register_synth_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<SynthOptions>();
  CLI::App* sub = app.add_subcommand("synth", "Write a random-weight model of any shape and type (benchmark input)");
  sub->add_option("--arch", o->arch, "llama | qwen2 | qwen3 | qwen2moe")->capture_default_str();
  sub->add_option("--n-embd", o->n_embd)->capture_default_str();
  sub->add_option("--n-ff", o->n_ff)->capture_default_str();
  sub->add_option("--n-layer", o->n_layer)->capture_default_str();
  sub->add_option("--n-head", o->n_head)->capture_default_str();
  sub->add_option("--n-head-kv", o->n_head_kv, "default: --n-head");
  sub->add_option("--head-dim", o->head_dim, "default: n_embd / n_head");
  sub->add_option("--n-vocab", o->n_vocab)->capture_default_str();
  sub->add_option("--n-expert", o->n_expert, "experts per MoE layer (0: dense)");
  sub->add_option("--n-expert-used", o->n_expert_used);
  sub->add_option("--n-ff-shexp", o->n_ff_shexp, "qwen2moe: the shared expert's FFN width (default: --n-ff)");
  sub->add_option("--ctx-size", o->n_ctx)->capture_default_str();
  sub->add_option("--rope-base", o->rope_base)->capture_default_str();
  sub->add_flag("--tied-embeddings", o->tied_embeddings, "no output.weight (the output uses token_embd)");
  sub->add_option("--type", o->type, "preset (Q4_K_M, Q5_K_M, Q3_K_M, Q2_K, ...) or tensor type (Q4_0, Q8_0, F16, ...)")
      ->capture_default_str();
  sub->add_option("--seed", o->seed)->capture_default_str();
  sub->add_option("--threads", o->threads, "default: all cores");
  sub->add_option("-o,--output", o->output, "output GGUF file")->required();
  sub->callback([o, &exit_code] {
    const auto t0 = std::chrono::steady_clock::now();
    Status s = write_synth_model(*o);
    if (!s.ok()) {
      std::fprintf(stderr, "rocmforge: %s\n", s.message().c_str());
      exit_code = 1;
      return;
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "synth: wrote %s in %.1f s\n", o->output.c_str(), secs);
    exit_code = 0;
  });
}

}  // namespace rf::cli
