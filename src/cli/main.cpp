// rocmforge: the command-line front end. The only file that includes CLI11: its header costs ~10 s of compile time
// in every file that uses it, so every subcommand's options are declared here and fill the plain option struct that
// the command's module runs (run_inspect, run_serve, ...).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <string>

#include "chat/render_template_command.h"
#include "cli/bench_command.h"
#include "cli/inspect_command.h"
#include "cli/synth_command.h"
#include "runtime/generate_command.h"
#include "server/serve_command.h"
#include "tokenizer/tokenize_command.h"

namespace {

// Each add_*_command adds one subcommand to `app`; when it runs, its exit status is stored in exit_code.

void add_inspect_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<rf::cli::InspectOptions>();
  CLI::App* sub = app.add_subcommand("inspect", "Print a GGUF file's header, metadata, tensors and hyper-parameters");
  sub->add_option("model", opts->model, "GGUF file (default: the built-in model)");
  sub->add_flag("--json", opts->json, "Print one JSON object");
  sub->add_option("--max-array-items", opts->max_array_items, "Leading items shown of long arrays")->check(CLI::PositiveNumber);
  sub->callback([opts, &exit_code] { exit_code = rf::cli::run_inspect(*opts); });
}

void add_bench_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<rf::cli::BenchOptions>();
  CLI::App* sub = app.add_subcommand("bench", "Measure prompt processing and generation speed of a model");
  sub->add_option("-m,--model", o->model, "GGUF model");
  sub->add_option("-p,--n-prompt", o->n_prompt, "prompt tokens per pp run")->capture_default_str();
  sub->add_option("-n,--n-gen", o->n_gen, "generated tokens per tg run")->capture_default_str();
  sub->add_option("-r,--repetitions", o->reps, "timed runs of each phase")->capture_default_str();
  sub->add_option("--threads", o->threads, "CPU threads (default: physical cores)");
  sub->add_option("--device", o->device, "auto | cpu | gpu")->capture_default_str();
  sub->add_option("--n-gpu-layers,--ngl", o->n_gpu_layers, "layers on the GPU, the rest on the CPU (-1: all that fit)")
      ->capture_default_str();
  sub->add_option("--decode-batches", o->decode_batches,
                  "also time batched decode with these numbers of sequences (e.g. 8,32)")
      ->delimiter(',');
  sub->add_flag("--json", o->json, "print one JSON object");
  sub->add_flag("--batch-invariant", o->batch_invariant,
                "compute every row of a batch alike, as serve does by default (GPU: other kernels)");
  sub->add_option("--parallel", o->parallel,
                  "with --batch-invariant: the sequences serve would decode at once (its --parallel: GPU kernels)")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  sub->add_flag("--kernels", o->kernels, "time the dot kernels of every SIMD table instead (no model)");
  sub->callback([o, &exit_code] { exit_code = rf::cli::run_bench(*o); });
}

void add_synth_command(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<rf::cli::SynthOptions>();
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
  sub->callback([o, &exit_code] { exit_code = rf::cli::run_synth(*o); });
}

void add_generate_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<rf::runtime::GenerateCommandOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a prompt");
  rf::runtime::GenerateOptions& o = args->options;
  cmd->add_option("-m,--model", o.model_path, "GGUF model file (default: the built-in model)");
  auto* prompt = cmd->add_option("-p,--prompt", o.prompt, "Prompt text");
  auto* tokens = cmd->add_option("--tokens", args->tokens, "Prompt as token ids: 1,2,3");
  prompt->excludes(tokens);
  tokens->excludes(prompt);
  cmd->add_option("-n,--n-predict", o.n_predict, "Tokens to generate")->check(CLI::NonNegativeNumber);
  cmd->add_option("--temp", o.sampling.temperature, "Temperature (0 = greedy)");
  cmd->add_option("--top-k", o.sampling.top_k, "Top-k (0 = off)");
  cmd->add_option("--top-p", o.sampling.top_p, "Top-p (1 = off)");
  cmd->add_option("--min-p", o.sampling.min_p, "Min-p (0 = off)");
  cmd->add_option("--repeat-penalty", o.sampling.repeat_penalty, "Repetition penalty (1 = off)");
  cmd->add_option("--presence-penalty", o.sampling.presence_penalty, "Presence penalty");
  cmd->add_option("--frequency-penalty", o.sampling.frequency_penalty, "Frequency penalty");
  cmd->add_option("--seed", o.sampling.seed, "Sampling seed");
  cmd->add_option("-c,--ctx-size", o.ctx_size, "Context size in tokens (0 = the model's)")->check(CLI::NonNegativeNumber);
  cmd->add_option("-t,--threads", o.threads, "CPU threads (0 = physical cores)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--device", args->device, "auto|cpu|gpu")->check(CLI::IsMember({"auto", "cpu", "gpu"}));
  cmd->add_option("--n-gpu-layers,--ngl", o.n_gpu_layers,
                  "Layers on the GPU, the rest on the CPU (-1: as many as fit in free GPU memory)")
      ->check(CLI::Range(-1, 1 << 20));
  cmd->add_flag("--ignore-eos", o.ignore_eos, "Do not stop at end-of-generation tokens");
  cmd->add_flag("--json", args->json, "Print one JSON object at the end instead of streaming text");
  cmd->add_option("--dump-logits", o.dump_logits_path, "Write the prompt's logits (one prefill batch) as JSON");
  cmd->callback([args, &exit_code] { exit_code = rf::runtime::run_generate_command(*args); });
}

void add_tokenize_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<rf::tokenizer::TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Print the token ids of a text");
  cmd->add_option("-m,--model", opts->model, "GGUF model (or vocabulary-only GGUF)")->required();
  auto* prompt = cmd->add_option("-p,--prompt", opts->prompt, "Text to tokenize");
  auto* file = cmd->add_option("-f,--file", opts->file, "File whose bytes to tokenize");
  prompt->excludes(file);
  file->excludes(prompt);
  cmd->add_flag("--add-special", opts->add_special, "Add BOS/EOS as the model's add_bos/add_eos flags say");
  cmd->add_flag("--parse-special", opts->parse_special, "Match the text of control tokens such as <|im_start|>");
  cmd->add_flag("--json", opts->json, "Print {\"tokens\":[...]}");
  cmd->callback([opts, prompt, file, &exit_code] {
    // A usage error like CLI11's own (help hint, exit status 1): an empty -p "" still counts as given.
    if (prompt->count() == 0 && file->count() == 0) {
      throw CLI::RequiredError("one of -p/--prompt or -f/--file");
    }
    exit_code = rf::tokenizer::run_tokenize(*opts);
  });
}

void add_serve_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<rf::server::ServeOptions>();
  CLI::App* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server with continuous batching");
  cmd->add_option("-m,--model", opts->model_path, "GGUF model (default: the built-in model)");
  cmd->add_option("--alias", opts->alias, "Model id reported by the API (default: the file name)");
  cmd->add_option("--host", opts->http.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", opts->http.port, "Port (0: any free port)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--api-key", opts->http.api_key, "Require 'Authorization: Bearer <key>' on /v1/*");
  cmd->add_option("-n,--parallel", opts->parallel, "Sequences generated at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  cmd->add_option("-c,--ctx-size", opts->ctx_size, "Tokens per sequence (0: the model's, at most 4096)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--kv-cache-tokens", opts->kv_cache_tokens, "KV-cache size in tokens (0: ctx-size * parallel)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--batch-tokens", opts->batch_tokens, "Token budget of one batch (decode + prefill chunks)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--queue", opts->queue, "Queued sequences before requests get 503")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  // Negative flags read into bools and applied in the callback: as flag functions of an integer they let CLI11 2.1
  // throw a bare std::invalid_argument (an abort) for `--no-prefix-cache=maybe`; bool flags report the bad value.
  auto no_prefix_cache = std::make_shared<bool>(false), no_batch_invariant = std::make_shared<bool>(false);
  cmd->add_flag("--no-prefix-cache", *no_prefix_cache, "Do not reuse prompt KV blocks");
  cmd->add_flag("--no-batch-invariant", *no_batch_invariant,
                "GPU: faster single-stream decode, but greedy text may then depend on what else runs (default: it does "
                "not)");
  cmd->add_option("-t,--threads", opts->threads, "CPU threads (0: physical cores)")->capture_default_str();
  cmd->add_option("--device", opts->device, "auto|cpu|gpu")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "cpu", "gpu"}));
  cmd->add_option("--n-gpu-layers,--ngl", opts->n_gpu_layers,
                  "Layers on the GPU, the rest on the CPU (-1: all that fit)")
      ->capture_default_str()
      ->check(CLI::Range(-1, 1 << 20));
  cmd->add_option("--max-body-bytes", opts->http.max_body_bytes, "Largest request body")->capture_default_str();
  cmd->add_option("--shutdown-grace", opts->shutdown_grace_s, "Seconds running requests get to finish on SIGTERM")
      ->capture_default_str();
  cmd->callback([opts, no_prefix_cache, no_batch_invariant, &exit_code] {
    opts->prefix_cache = opts->prefix_cache && !*no_prefix_cache;
    opts->batch_invariant = opts->batch_invariant && !*no_batch_invariant;
    exit_code = rf::server::run_serve(*opts);
  });
}

void add_render_template_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<rf::chat::RenderTemplateOptions>();
  auto bos = std::make_shared<std::string>();
  auto eos = std::make_shared<std::string>();
  CLI::App* cmd =
      app.add_subcommand("render-template", "Render a chat template for a conversation (prints the prompt)");
  cmd->add_option("-m,--model", opts->model, "GGUF model whose tokenizer.chat_template is used");
  cmd->add_option("--template", opts->template_file, "Jinja template file (overrides the model's)");
  cmd->add_option("--messages", opts->messages_file, "JSON file: array of {\"role\",\"content\"} messages")->required();
  cmd->add_option("--tools", opts->tools_file, "JSON file: array of tools passed as `tools`");
  cmd->add_flag("--add-generation-prompt", opts->add_generation_prompt, "End with the assistant turn's opening");
  auto* bos_opt = cmd->add_option("--bos-token", *bos, "BOS token text (default: the model's)");
  auto* eos_opt = cmd->add_option("--eos-token", *eos, "EOS token text (default: the model's)");
  cmd->callback([opts, bos, eos, bos_opt, eos_opt, &exit_code] {
    // Given, even as "", overrides the model's token text; absent keeps it.
    if (bos_opt->count() > 0) opts->bos_token = *bos;
    if (eos_opt->count() > 0) opts->eos_token = *eos;
    exit_code = rf::chat::run_render_template(*opts);
  });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"rocmforge: LLM inference for GGUF models on AMD (ROCm/HIP), NVIDIA (CUDA) and CPU"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "rocmforge " ROCMFORGE_VERSION);
  int exit_code = 0;
  add_inspect_command(app, exit_code);
  add_bench_command(app, exit_code);
  add_synth_command(app, exit_code);
  add_generate_command(app, exit_code);
  add_tokenize_command(app, exit_code);
  add_serve_command(app, exit_code);
  add_render_template_command(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 1;
  }
  return exit_code;
}
