#include "runtime/generate_command.h"

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/default_model.h"
#include "runtime/generate.h"

namespace rf::runtime {
namespace {

struct GenerateArgs {
  GenerateOptions options;
  std::string tokens;
  std::string device = "auto";
  bool json = false;
};

Status parse_tokens(const std::string& text, std::vector<int32_t>* out) {
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      const long v = std::stol(item, &used);
      if (used != item.size()) throw std::invalid_argument(item);
      out->push_back(static_cast<int32_t>(v));
    } catch (const std::exception&) {
      return Status::error("generate: --tokens: '" + item + "' is not an integer (expected e.g. 1,2,3)");
    }
  }
  if (out->empty()) return Status::error("generate: --tokens is empty");
  return ok_status();
}

int run(GenerateArgs& a) {
  GenerateOptions& o = a.options;
  if (!a.tokens.empty()) {
    if (const Status s = parse_tokens(a.tokens, &o.prompt_tokens); !s.ok()) {
      std::fprintf(stderr, "error: %s\n", s.message().c_str());
      return 1;
    }
  }
  o.device = a.device == "cpu" ? backend::DeviceKind::kCpu
             : a.device == "gpu" ? backend::DeviceKind::kGpu
                                 : backend::DeviceKind::kAuto;
  auto on_text = [&](std::string_view s) {
    if (a.json) return;
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
  };
  auto r = generate(o, on_text);
  if (!r) {
    std::fprintf(stderr, "error: %s\n", r.error_message().c_str());
    return 1;
  }
  if (a.json) {
    nlohmann::json j;
    j["prompt_tokens"] = r->prompt_tokens;
    j["tokens"] = r->tokens;
    j["text"] = r->text;
    j["backend"] = r->backend_name;
    j["timings"] = {{"load_seconds", r->load_seconds},
                    {"prefill_seconds", r->prefill_seconds},
                    {"decode_seconds", r->decode_seconds},
                    {"prefill_tokens_per_s", r->prefill_seconds > 0 ? r->prompt_tokens.size() / r->prefill_seconds : 0.0},
                    {"decode_tokens_per_s", r->decode_seconds > 0 ? r->tokens.size() / r->decode_seconds : 0.0}};
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("\n");
  }
  return 0;
}

}  // namespace

void register_generate_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a prompt");
  GenerateOptions& o = args->options;
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
  cmd->callback([args, &exit_code] {
    if (args->options.prompt.empty() && args->tokens.empty()) {
      std::fprintf(stderr, "error: generate: give a prompt with -p TEXT or --tokens 1,2,3\n");
      exit_code = 1;
      return;
    }
    if (args->options.model_path.empty()) args->options.model_path = default_model_path();
    exit_code = run(*args);
  });
}

}  // namespace rf::runtime
