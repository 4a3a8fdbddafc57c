// libFuzzer target: OpenAI request bodies through rf::server::parse_request (the server's JSON-body parser).
// First input byte: bit 0 picks the endpoint (chat / completions); the rest is the body. Checks:
//   - a rejection is a 400 invalid_request_error with a message, and its body() is JSON that carries it;
//   - an accepted request holds only values in the documented ranges (sampling fields, n, stop strings, logprobs,
//     messages with a known role and string content, non-empty token prompts of non-negative ids);
//   - parse_request and parse_request_json (on the same body parsed by nlohmann) agree.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <variant>

#include "fuzz_support.h"
#include "server/request.h"

namespace {

using rf::fuzz::check;
using rf::server::ApiError;
using rf::server::CompletionRequest;
using rf::server::Endpoint;

void check_error(const ApiError& e) {
  check(e.status == 400 && e.type == "invalid_request_error" && !e.message.empty());
  const std::string body = e.body();
  const auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  check(j.is_object() && j.contains("error") && j["error"].is_object());
  check(j["error"].value("message", "").size() > 0);
  if (e.param) check(j["error"].value("param", "") == *e.param);
}

bool in(double v, double lo, double hi) { return v >= lo && v <= hi; }

void check_request(const CompletionRequest& r, Endpoint endpoint) {
  check(r.endpoint == endpoint);
  const auto& s = r.sampling;
  check(in(s.temperature, 0, 2) && s.top_p > 0 && s.top_p <= 1 && s.top_k >= 0 && in(s.min_p, 0, 1));
  check(in(s.presence_penalty, -2, 2) && in(s.frequency_penalty, -2, 2));
  check(s.repetition_penalty > 0 && s.repetition_penalty <= 10);
  check(r.n >= 1 && r.n <= rf::server::kMaxChoices);
  check(r.top_logprobs >= 0 && r.top_logprobs <= rf::server::kMaxTopLogprobs);
  check(r.stop.size() <= rf::server::kMaxStopStrings);
  for (const auto& stop : r.stop) check(!stop.empty());
  if (r.include_usage) check(r.stream);
  if (r.max_tokens) check(*r.max_tokens >= (endpoint == Endpoint::kChat ? 1 : 0));
  if (endpoint == Endpoint::kChat) {
    if (r.top_logprobs > 0) check(r.logprobs);
    check(r.messages.is_array() && !r.messages.empty());
    for (const auto& m : r.messages) {
      check(m.is_object() && m.contains("role") && m["role"].is_string());
      check(m.contains("content") && m["content"].is_string());
    }
  } else if (r.prompt_is_tokens) {
    check(!r.prompt_tokens.empty());
    for (int32_t t : r.prompt_tokens) check(t >= 0);
  } else {
    check(r.prompt_tokens.empty());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Endpoint endpoint = (data[0] & 1) ? Endpoint::kCompletion : Endpoint::kChat;
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto parsed = rf::server::parse_request(endpoint, body);
  if (const auto* e = std::get_if<ApiError>(&parsed)) {
    check_error(*e);
  } else {
    check_request(std::get<CompletionRequest>(parsed), endpoint);
  }
  // The JSON-value entry point agrees with the text one whenever the text is JSON (the text one also rejects
  // nesting beyond its limit before parsing, so only bodies it parsed are compared).
  const auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    check(std::holds_alternative<ApiError>(parsed));
    return 0;
  }
  const auto again = rf::server::parse_request_json(endpoint, j);
  if (const auto* e = std::get_if<ApiError>(&again)) {
    check_error(*e);
    if (const auto* first = std::get_if<ApiError>(&parsed)) {
      check(first->message.rfind("request body nests JSON", 0) == 0 || first->message == e->message);
    } else {
      check(false);  // accepted as text, rejected as a value
    }
  } else {
    const auto* first = std::get_if<CompletionRequest>(&parsed);
    if (first == nullptr) {
      check(std::get<ApiError>(parsed).message.rfind("request body nests JSON", 0) == 0);
    } else {
      const auto& second = std::get<CompletionRequest>(again);
      check(first->messages == second.messages && first->prompt_text == second.prompt_text &&
            first->prompt_tokens == second.prompt_tokens && first->stop == second.stop && first->n == second.n);
    }
  }
  return 0;
}
