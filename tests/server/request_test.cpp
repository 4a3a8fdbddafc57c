#include "server/request.h"

#include <gtest/gtest.h>

namespace rf::server {
namespace {

CompletionRequest ok(Endpoint e, const std::string& body) {
  auto r = parse_request(e, body);
  if (auto* err = std::get_if<ApiError>(&r)) {
    ADD_FAILURE() << body << " -> " << err->message;
    return {};
  }
  return std::get<CompletionRequest>(r);
}

ApiError bad(Endpoint e, const std::string& body) {
  auto r = parse_request(e, body);
  if (auto* err = std::get_if<ApiError>(&r)) return *err;
  ADD_FAILURE() << "accepted: " << body;
  return {};
}

TEST(Request, ChatParsesEveryListedField) {
  const auto r = ok(Endpoint::kChat, R"({
    "model": "m", "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}],
    "max_completion_tokens": 7, "temperature": 0.5, "top_p": 0.9, "top_k": 40, "min_p": 0.05,
    "presence_penalty": 0.1, "frequency_penalty": -0.2, "repetition_penalty": 1.1, "seed": 1234,
    "stop": ["a", "bc"], "n": 3, "logprobs": true, "top_logprobs": 2, "stream": true,
    "stream_options": {"include_usage": true}, "user": "u1", "ignore_eos": true, "some_future_field": {"x": 1}})");
  EXPECT_EQ(r.model, "m");
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[1]["content"], "Hi");
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_DOUBLE_EQ(r.sampling.temperature, 0.5);
  EXPECT_DOUBLE_EQ(r.sampling.top_p, 0.9);
  EXPECT_EQ(r.sampling.top_k, 40);
  EXPECT_DOUBLE_EQ(r.sampling.min_p, 0.05);
  EXPECT_DOUBLE_EQ(r.sampling.presence_penalty, 0.1);
  EXPECT_DOUBLE_EQ(r.sampling.frequency_penalty, -0.2);
  EXPECT_DOUBLE_EQ(r.sampling.repetition_penalty, 1.1);
  EXPECT_EQ(r.sampling.seed, 1234u);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"a", "bc"}));
  EXPECT_EQ(r.n, 3);
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 2);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.user, "u1");
  EXPECT_TRUE(r.ignore_eos);
}

TEST(Request, DefaultsWhenFieldsAbsentOrNull) {
  const auto r =
      ok(Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}], "temperature": null, "stop": null})");
  EXPECT_FALSE(r.max_tokens.has_value());
  EXPECT_DOUBLE_EQ(r.sampling.temperature, 1.0);
  EXPECT_EQ(r.n, 1);
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.ignore_eos);
  EXPECT_FALSE(r.sampling.seed.has_value());
  EXPECT_TRUE(r.stop.empty());
}

TEST(Request, ContentPartsFlattenToText) {
  const auto r = ok(Endpoint::kChat, R"({"messages": [{"role": "user", "name": "bob",
      "content": [{"type": "text", "text": "Hello "}, {"type": "text", "text": "world"}]},
      {"role": "assistant", "content": null}]})");
  EXPECT_EQ(r.messages[0]["content"], "Hello world");
  EXPECT_EQ(r.messages[0]["name"], "bob");
  EXPECT_EQ(r.messages[1]["content"], "");
}

TEST(Request, CompletionPromptForms) {
  EXPECT_EQ(ok(Endpoint::kCompletion, R"({"prompt": "abc"})").prompt_text, "abc");
  EXPECT_EQ(ok(Endpoint::kCompletion, R"({"prompt": ["abc"]})").prompt_text, "abc");
  auto t = ok(Endpoint::kCompletion, R"({"prompt": [1, 2, 3], "logprobs": 3})");
  EXPECT_TRUE(t.prompt_is_tokens);
  EXPECT_EQ(t.prompt_tokens, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_TRUE(t.logprobs);
  EXPECT_EQ(t.top_logprobs, 3);
  EXPECT_EQ(ok(Endpoint::kCompletion, R"({"prompt": [[5, 6]]})").prompt_tokens, (std::vector<int32_t>{5, 6}));
  EXPECT_EQ(ok(Endpoint::kCompletion, R"({"prompt": "x", "stop": "\n"})").stop, (std::vector<std::string>{"\n"}));
}

TEST(Request, IntegralFloatsAndNegativeSeedsAccepted) {
  auto r = ok(Endpoint::kCompletion, R"({"prompt": "x", "max_tokens": 16.0, "seed": -1})");
  EXPECT_EQ(r.max_tokens, 16);
  EXPECT_EQ(r.sampling.seed, ~uint64_t{0});
}

struct BadCase {
  Endpoint endpoint;
  const char* body;
  const char* param;  // expected param ("" = none)
};

TEST(Request, RejectsWrongTypesAndRangesWith400AndParam) {
  const BadCase cases[] = {
      {Endpoint::kChat, R"({"messages": "hi"})", "messages"},
      {Endpoint::kChat, R"({"messages": []})", "messages"},
      {Endpoint::kChat, R"({})", "messages"},
      {Endpoint::kChat, R"({"messages": [{"role": "robot", "content": "x"}]})", "messages[0].role"},
      {Endpoint::kChat, R"({"messages": [{"content": "x"}]})", "messages[0].role"},
      {Endpoint::kChat, R"({"messages": [{"role": "user"}]})", "messages[0].content"},
      {Endpoint::kChat, R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content"},
      {Endpoint::kChat, R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})",
       "messages[0].content[0]"},
      {Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"})", "temperature"},
      {Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}], "ignore_eos": 1})", "ignore_eos"},
      {Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}], "temperature": 2.5})", "temperature"},
      {Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}], "top_p": 0})", "top_p"},
      {Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}], "top_k": 1.5})", "top_k"},
      {Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}], "min_p": -0.1})", "min_p"},
      {Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}], "presence_penalty": 3})",
       "presence_penalty"},
      {Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}], "frequency_penalty": -3})",
       "frequency_penalty"},
      {Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}], "repetition_penalty": 0})",
       "repetition_penalty"},
      {Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0})", "max_tokens"},
      {Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 1e300})", "max_tokens"},
      {Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": -5})",
       "max_completion_tokens"},
      {Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}], "n": 0})", "n"},
      {Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}], "n": 100000})", "n"},
      {Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}], "seed": "7"})", "seed"},
      {Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}], "stop": 5})", "stop"},
      {Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}], "stop": ["a", 1]})", "stop"},
      {Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}], "logprobs": 1})", "logprobs"},
      {Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", "top_logprobs"},
      {Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 21})",
       "top_logprobs"},
      {Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}], "stream": "yes"})", "stream"},
      {Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}], "stream_options": {}})", "stream_options"},
      {Endpoint::kChat,
       R"({"messages": [{"role": "user", "content": "x"}], "stream": true, "stream_options": {"include_usage": 1}})",
       "stream_options.include_usage"},
      {Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}], "model": 3})", "model"},
      {Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}], "user": []})", "user"},
      {Endpoint::kCompletion, R"({})", "prompt"},
      {Endpoint::kCompletion, R"({"prompt": 5})", "prompt"},
      {Endpoint::kCompletion, R"({"prompt": []})", "prompt"},
      {Endpoint::kCompletion, R"({"prompt": [1, -2]})", "prompt"},
      {Endpoint::kCompletion, R"({"prompt": [1, 99999999999]})", "prompt"},
      {Endpoint::kCompletion, R"({"prompt": ["a", "b"]})", "prompt"},
      {Endpoint::kCompletion, R"({"prompt": "x", "logprobs": 50})", "logprobs"},
  };
  for (const auto& c : cases) {
    const ApiError e = bad(c.endpoint, c.body);
    EXPECT_EQ(e.status, 400) << c.body;
    EXPECT_EQ(e.type, "invalid_request_error") << c.body;
    EXPECT_EQ(e.param.value_or(""), c.param) << c.body << " -> " << e.message;
    EXPECT_FALSE(e.message.empty());
  }
}

TEST(Request, MalformedJsonAndHostileBodiesAre400) {
  for (const std::string& body :
       {std::string("{"), std::string("not json"), std::string(""), std::string("[1,2]"), std::string("null"),
        std::string("{\"messages\": [{\"role\": \"user\", \"content\": \"\xff\xfe\"}]}"),  // invalid UTF-8
        std::string("{\"max_tokens\": 1e999999}"), std::string(100000, '[') + std::string(100000, ']'),
        std::string("{\"a\":") + std::string(5000, '{')}) {
    const ApiError e = bad(Endpoint::kChat, body);
    EXPECT_EQ(e.status, 400) << body.substr(0, 40);
  }
}

TEST(Request, ErrorMessagesSayWhatWasExpectedAndGot) {
  const ApiError e = bad(Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}], "temperature": 9})");
  EXPECT_NE(e.message.find("'temperature'"), std::string::npos);
  EXPECT_NE(e.message.find("got 9"), std::string::npos);
  const ApiError t = bad(Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}], "n": "2"})");
  EXPECT_NE(t.message.find("got string"), std::string::npos);
}

TEST(ApiErrorJson, HasOpenAiShape) {
  const auto j = invalid_request("bad thing", "n").to_json();
  ASSERT_TRUE(j.contains("error"));
  EXPECT_EQ(j["error"]["message"], "bad thing");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "n");
  EXPECT_TRUE(j["error"]["code"].is_null());
  EXPECT_EQ(unauthorized("no").status, 401);
  EXPECT_EQ(unauthorized("no").code.value_or(""), "invalid_api_key");
  EXPECT_EQ(not_found("x").status, 404);
  EXPECT_EQ(payload_too_large(10).status, 413);
  EXPECT_EQ(server_overloaded("busy").status, 503);
}

TEST(ApiErrorJson, DumpNeverThrowsOnInvalidUtf8) {
  const std::string body = invalid_request(std::string("bad \xff byte")).body();
  EXPECT_NE(body.find("\xEF\xBF\xBD"), std::string::npos);  // U+FFFD
}

}  // namespace
}  // namespace rf::server
