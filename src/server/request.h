// Parsing and validation of OpenAI request bodies for POST /v1/chat/completions and POST /v1/completions.
// Every listed field is checked for type and range; unknown fields are ignored; JSON null means "not given".
// Errors come back as ApiError (400) naming the field in `param`.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "server/api_error.h"

namespace rf::server {

enum class Endpoint { kChat, kCompletion };

struct SamplingFields {
  double temperature = 1.0;         // [0, 2]
  double top_p = 1.0;               // (0, 1]
  int32_t top_k = 0;                // >= 0; 0 = off
  double min_p = 0.0;               // [0, 1]
  double presence_penalty = 0.0;    // [-2, 2]
  double frequency_penalty = 0.0;   // [-2, 2]
  double repetition_penalty = 1.0;  // (0, 10]
  std::optional<uint64_t> seed;     // any integer (negative values wrap, as two's complement)
};

struct CompletionRequest {
  Endpoint endpoint = Endpoint::kChat;
  std::string model;                                                  // "" when not given
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();  // chat: content flattened to strings
  std::string prompt_text;                                            // completions, when a string
  std::vector<int32_t> prompt_tokens;                                 // completions, when a token array
  bool prompt_is_tokens = false;
  std::optional<int64_t> max_tokens;  // max_tokens or max_completion_tokens; >= 1 (0 allowed for completions)
  SamplingFields sampling;
  std::vector<std::string> stop;  // non-empty strings
  int32_t n = 1;                  // [1, kMaxChoices]
  bool logprobs = false;
  int32_t top_logprobs = 0;  // alternatives per position, [0, 20]
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool ignore_eos = false;     // extension (as in vLLM and llama.cpp's server): end-of-generation tokens do not stop
  std::string user;
};

inline constexpr int32_t kMaxChoices = 128;
inline constexpr int32_t kMaxTopLogprobs = 20;
inline constexpr size_t kMaxStopStrings = 16;

// Parses a request body. `endpoint` selects which fields are required (messages vs prompt).
std::variant<CompletionRequest, ApiError> parse_request(Endpoint endpoint, std::string_view body);
std::variant<CompletionRequest, ApiError> parse_request_json(Endpoint endpoint, const nlohmann::json& body);

}  // namespace rf::server
