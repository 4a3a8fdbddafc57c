// Response bodies in OpenAI's exact shapes: chat.completion, chat.completion.chunk, text_completion (whole and
// streamed), usage, logprobs (chat and legacy completions formats), and Server-Sent Events framing.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "server/request.h"

namespace rf::server {

using OJson = nlohmann::ordered_json;

struct TopLogprob {
  std::string token;  // the token's text (raw bytes; invalid UTF-8 is replaced when serialized)
  float logprob = 0.0f;
};

struct TokenLogprob {
  std::string token;
  float logprob = 0.0f;
  std::vector<TopLogprob> top;  // best first
};

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_tokens = 0;  // prompt tokens served from the prefix cache
};

struct ResponseMeta {
  std::string id;  // "chatcmpl-..." / "cmpl-..."
  int64_t created = 0;
  std::string model;
  bool include_usage = false;  // streaming: chunks carry "usage": null and a final usage chunk follows
};

struct ChoiceResult {
  int32_t index = 0;
  std::string text;
  std::string finish_reason;                          // "stop" | "length"
  std::optional<std::vector<TokenLogprob>> logprobs;  // when requested
};

// "chatcmpl-" / "cmpl-" + 24 random alphanumerics.
std::string make_response_id(Endpoint endpoint);
int64_t unix_time_now();

OJson usage_json(const Usage& u);
// {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}], "refusal": null}
OJson chat_logprobs_json(const std::vector<TokenLogprob>& lps);
// {"tokens", "token_logprobs", "top_logprobs", "text_offset"}; offsets count from text_offset_base.
OJson completion_logprobs_json(const std::vector<TokenLogprob>& lps, const std::vector<size_t>& text_offsets);

OJson chat_completion_json(const ResponseMeta& meta, const std::vector<ChoiceResult>& choices, const Usage& usage);
OJson text_completion_json(const ResponseMeta& meta, const std::vector<ChoiceResult>& choices,
                           const std::vector<std::vector<size_t>>& text_offsets, const Usage& usage);

// Streaming chunks. Chat: the first chunk of a choice carries the role; content chunks a delta; the last one an
// empty delta and the finish reason.
OJson chat_chunk_role(const ResponseMeta& meta, int32_t index);
OJson chat_chunk_content(const ResponseMeta& meta, int32_t index, const std::string& text,
                         const std::vector<TokenLogprob>* logprobs);
OJson chat_chunk_finish(const ResponseMeta& meta, int32_t index, const std::string& finish_reason);
OJson text_chunk(const ResponseMeta& meta, int32_t index, const std::string& text, const std::vector<TokenLogprob>* lps,
                 const std::vector<size_t>* text_offsets, const std::optional<std::string>& finish_reason);
// The closing usage chunk (choices: []).
OJson usage_chunk(const ResponseMeta& meta, Endpoint endpoint, const Usage& usage);

// SSE framing: "data: <json>\n\n" and the terminator "data: [DONE]\n\n".
std::string sse_event(const OJson& chunk);
std::string sse_done();

}  // namespace rf::server
