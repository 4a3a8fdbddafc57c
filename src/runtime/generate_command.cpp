#include "runtime/generate_command.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/default_model.h"
#include "runtime/generate.h"

namespace rf::runtime {
namespace {

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

}  // namespace

int run_generate_command(const GenerateCommandOptions& opts) {
  if (opts.options.prompt.empty() && opts.tokens.empty()) {
    std::fprintf(stderr, "error: generate: give a prompt with -p TEXT or --tokens 1,2,3\n");
    return 1;
  }
  GenerateCommandOptions a = opts;
  GenerateOptions& o = a.options;
  if (o.model_path.empty()) o.model_path = default_model_path();
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

}  // namespace rf::runtime
