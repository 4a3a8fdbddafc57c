#include "server/response.h"

#include <chrono>
#include <random>

#include "server/api_error.h"

namespace rf::server {
namespace {

OJson bytes_json(const std::string& s) {
  OJson b = OJson::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

OJson chunk_base(const ResponseMeta& meta, const char* object) {
  OJson j = OJson::object();
  j["id"] = meta.id;
  j["object"] = object;
  j["created"] = meta.created;
  j["model"] = meta.model;
  j["system_fingerprint"] = "rocmforge";
  return j;
}

OJson finish_json(const std::string& reason) { return reason.empty() ? OJson(nullptr) : OJson(reason); }

OJson with_choice(OJson j, OJson choice, const ResponseMeta& meta) {
  j["choices"] = OJson::array({std::move(choice)});
  if (meta.include_usage) j["usage"] = nullptr;
  return j;
}

}  // namespace

std::string make_response_id(Endpoint endpoint) {
  static constexpr char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string id = endpoint == Endpoint::kChat ? "chatcmpl-" : "cmpl-";
  for (int i = 0; i < 24; ++i) id += kChars[rng() % (sizeof(kChars) - 1)];
  return id;
}

int64_t unix_time_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

OJson usage_json(const Usage& u) {
  OJson j = OJson::object();
  j["prompt_tokens"] = u.prompt_tokens;
  j["completion_tokens"] = u.completion_tokens;
  j["total_tokens"] = u.prompt_tokens + u.completion_tokens;
  j["prompt_tokens_details"] = OJson{{"cached_tokens", u.cached_tokens}};
  return j;
}

OJson chat_logprobs_json(const std::vector<TokenLogprob>& lps) {
  OJson content = OJson::array();
  for (const auto& lp : lps) {
    OJson e = OJson::object();
    e["token"] = lp.token;
    e["logprob"] = lp.logprob;
    e["bytes"] = bytes_json(lp.token);
    OJson top = OJson::array();
    for (const auto& t : lp.top) {
      OJson te = OJson::object();
      te["token"] = t.token;
      te["logprob"] = t.logprob;
      te["bytes"] = bytes_json(t.token);
      top.push_back(std::move(te));
    }
    e["top_logprobs"] = std::move(top);
    content.push_back(std::move(e));
  }
  OJson j = OJson::object();
  j["content"] = std::move(content);
  j["refusal"] = nullptr;
  return j;
}

OJson completion_logprobs_json(const std::vector<TokenLogprob>& lps, const std::vector<size_t>& text_offsets) {
  OJson tokens = OJson::array(), token_lps = OJson::array(), tops = OJson::array(), offsets = OJson::array();
  for (size_t i = 0; i < lps.size(); ++i) {
    tokens.push_back(lps[i].token);
    token_lps.push_back(lps[i].logprob);
    OJson top = OJson::object();
    for (const auto& t : lps[i].top) {
      if (!top.contains(t.token)) top[t.token] = t.logprob;  // distinct texts only, as a JSON object requires
    }
    tops.push_back(std::move(top));
    offsets.push_back(i < text_offsets.size() ? text_offsets[i] : 0);
  }
  OJson j = OJson::object();
  j["tokens"] = std::move(tokens);
  j["token_logprobs"] = std::move(token_lps);
  j["top_logprobs"] = std::move(tops);
  j["text_offset"] = std::move(offsets);
  return j;
}

OJson chat_completion_json(const ResponseMeta& meta, const std::vector<ChoiceResult>& choices, const Usage& usage) {
  OJson j = chunk_base(meta, "chat.completion");
  OJson cs = OJson::array();
  for (const auto& c : choices) {
    OJson msg = OJson::object();
    msg["role"] = "assistant";
    msg["content"] = c.text;
    msg["refusal"] = nullptr;
    OJson choice = OJson::object();
    choice["index"] = c.index;
    choice["message"] = std::move(msg);
    choice["logprobs"] = c.logprobs ? chat_logprobs_json(*c.logprobs) : OJson(nullptr);
    choice["finish_reason"] = finish_json(c.finish_reason);
    cs.push_back(std::move(choice));
  }
  j["choices"] = std::move(cs);
  j["usage"] = usage_json(usage);
  return j;
}

OJson text_completion_json(const ResponseMeta& meta, const std::vector<ChoiceResult>& choices,
                           const std::vector<std::vector<size_t>>& text_offsets, const Usage& usage) {
  OJson j = chunk_base(meta, "text_completion");
  OJson cs = OJson::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    const auto& c = choices[i];
    OJson choice = OJson::object();
    choice["text"] = c.text;
    choice["index"] = c.index;
    choice["logprobs"] =
        c.logprobs
            ? completion_logprobs_json(*c.logprobs, i < text_offsets.size() ? text_offsets[i] : std::vector<size_t>{})
            : OJson(nullptr);
    choice["finish_reason"] = finish_json(c.finish_reason);
    cs.push_back(std::move(choice));
  }
  j["choices"] = std::move(cs);
  j["usage"] = usage_json(usage);
  return j;
}

OJson chat_chunk_role(const ResponseMeta& meta, int32_t index) {
  OJson delta = OJson::object();
  delta["role"] = "assistant";
  delta["content"] = "";
  delta["refusal"] = nullptr;
  OJson choice = OJson::object();
  choice["index"] = index;
  choice["delta"] = std::move(delta);
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = nullptr;
  return with_choice(chunk_base(meta, "chat.completion.chunk"), std::move(choice), meta);
}

OJson chat_chunk_content(const ResponseMeta& meta, int32_t index, const std::string& text,
                         const std::vector<TokenLogprob>* logprobs) {
  OJson choice = OJson::object();
  choice["index"] = index;
  choice["delta"] = OJson{{"content", text}};
  choice["logprobs"] = logprobs ? chat_logprobs_json(*logprobs) : OJson(nullptr);
  choice["finish_reason"] = nullptr;
  return with_choice(chunk_base(meta, "chat.completion.chunk"), std::move(choice), meta);
}

OJson chat_chunk_finish(const ResponseMeta& meta, int32_t index, const std::string& finish_reason) {
  OJson choice = OJson::object();
  choice["index"] = index;
  choice["delta"] = OJson::object();
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = finish_json(finish_reason);
  return with_choice(chunk_base(meta, "chat.completion.chunk"), std::move(choice), meta);
}

OJson text_chunk(const ResponseMeta& meta, int32_t index, const std::string& text, const std::vector<TokenLogprob>* lps,
                 const std::vector<size_t>* text_offsets, const std::optional<std::string>& finish_reason) {
  OJson choice = OJson::object();
  choice["text"] = text;
  choice["index"] = index;
  choice["logprobs"] =
      lps ? completion_logprobs_json(*lps, text_offsets ? *text_offsets : std::vector<size_t>{}) : OJson(nullptr);
  choice["finish_reason"] = finish_reason ? finish_json(*finish_reason) : OJson(nullptr);
  return with_choice(chunk_base(meta, "text_completion"), std::move(choice), meta);
}

OJson usage_chunk(const ResponseMeta& meta, Endpoint endpoint, const Usage& usage) {
  OJson j = chunk_base(meta, endpoint == Endpoint::kChat ? "chat.completion.chunk" : "text_completion");
  j["choices"] = OJson::array();
  j["usage"] = usage_json(usage);
  return j;
}

std::string sse_event(const OJson& chunk) { return "data: " + dump_json(chunk) + "\n\n"; }

std::string sse_done() { return "data: [DONE]\n\n"; }

}  // namespace rf::server
