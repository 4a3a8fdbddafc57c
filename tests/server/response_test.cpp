#include "server/response.h"

#include <gtest/gtest.h>

namespace rf::server {
namespace {

ResponseMeta meta(bool include_usage = false) { return ResponseMeta{"chatcmpl-abc", 1700000000, "m", include_usage}; }

TEST(Response, IdsHavePrefixAndAreUnique) {
  const auto a = make_response_id(Endpoint::kChat), b = make_response_id(Endpoint::kChat);
  EXPECT_EQ(a.rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(make_response_id(Endpoint::kCompletion).rfind("cmpl-", 0), 0u);
  EXPECT_NE(a, b);
}

TEST(Response, ChatCompletionShape) {
  const auto j = chat_completion_json(meta(), {{0, "Hello", "stop", std::nullopt}, {1, "Hi", "length", std::nullopt}},
                                      Usage{5, 3, 2});
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["id"], "chatcmpl-abc");
  EXPECT_EQ(j["created"], 1700000000);
  EXPECT_EQ(j["model"], "m");
  ASSERT_EQ(j["choices"].size(), 2u);
  EXPECT_EQ(j["choices"][0]["index"], 0);
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Hello");
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["choices"][1]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 5);
  EXPECT_EQ(j["usage"]["completion_tokens"], 3);
  EXPECT_EQ(j["usage"]["total_tokens"], 8);
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
}

TEST(Response, ChatStreamChunksShape) {
  const auto role = chat_chunk_role(meta(true), 2);
  EXPECT_EQ(role["object"], "chat.completion.chunk");
  EXPECT_EQ(role["choices"][0]["index"], 2);
  EXPECT_EQ(role["choices"][0]["delta"]["role"], "assistant");
  EXPECT_TRUE(role["choices"][0]["finish_reason"].is_null());
  EXPECT_TRUE(role.contains("usage") && role["usage"].is_null());
  const auto c = chat_chunk_content(meta(), 0, "tok", nullptr);
  EXPECT_EQ(c["choices"][0]["delta"]["content"], "tok");
  EXPECT_FALSE(c["choices"][0]["delta"].contains("role"));
  EXPECT_FALSE(c.contains("usage"));
  const auto f = chat_chunk_finish(meta(), 0, "length");
  EXPECT_TRUE(f["choices"][0]["delta"].empty());
  EXPECT_EQ(f["choices"][0]["finish_reason"], "length");
  const auto u = usage_chunk(meta(true), Endpoint::kChat, Usage{1, 2, 0});
  EXPECT_TRUE(u["choices"].empty());
  EXPECT_EQ(u["usage"]["total_tokens"], 3);
}

TEST(Response, TextCompletionShapeAndChunks) {
  const auto j = text_completion_json(meta(), {{0, "abc", "stop", std::nullopt}}, {}, Usage{1, 1, 0});
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["text"], "abc");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  const auto c = text_chunk(meta(), 0, "x", nullptr, nullptr, std::nullopt);
  EXPECT_EQ(c["object"], "text_completion");
  EXPECT_TRUE(c["choices"][0]["finish_reason"].is_null());
  const auto f = text_chunk(meta(), 0, "", nullptr, nullptr, std::string("length"));
  EXPECT_EQ(f["choices"][0]["finish_reason"], "length");
}

TEST(Response, ChatLogprobsFormat) {
  const std::vector<TokenLogprob> lps = {{"He", -0.5f, {{"He", -0.5f}, {"Hi", -1.25f}}}};
  const auto j = chat_logprobs_json(lps);
  ASSERT_EQ(j["content"].size(), 1u);
  EXPECT_EQ(j["content"][0]["token"], "He");
  EXPECT_FLOAT_EQ(j["content"][0]["logprob"].get<float>(), -0.5f);
  EXPECT_EQ(j["content"][0]["bytes"], (nlohmann::json::array({72, 101})));
  ASSERT_EQ(j["content"][0]["top_logprobs"].size(), 2u);
  EXPECT_EQ(j["content"][0]["top_logprobs"][1]["token"], "Hi");
  EXPECT_TRUE(j["refusal"].is_null());
}

TEST(Response, CompletionLogprobsFormat) {
  const std::vector<TokenLogprob> lps = {{"a", -0.1f, {{"a", -0.1f}, {"b", -2.0f}}}, {"bc", -0.2f, {}}};
  const auto j = completion_logprobs_json(lps, {0, 1});
  EXPECT_EQ(j["tokens"], (nlohmann::json::array({"a", "bc"})));
  EXPECT_FLOAT_EQ(j["token_logprobs"][1].get<float>(), -0.2f);
  EXPECT_FLOAT_EQ(j["top_logprobs"][0]["b"].get<float>(), -2.0f);
  EXPECT_EQ(j["text_offset"], (nlohmann::json::array({0, 1})));
}

TEST(Response, PartialUtf8TokenKeepsRawBytes) {
  const std::vector<TokenLogprob> lps = {{"\xE2\x96", -1.0f, {}}};
  const auto j = chat_logprobs_json(lps);
  EXPECT_EQ(j["content"][0]["bytes"], (nlohmann::json::array({0xE2, 0x96})));
  EXPECT_NO_THROW((void)sse_event(j));
}

TEST(Response, SseFraming) {
  EXPECT_EQ(sse_event(OJson{{"a", 1}}), "data: {\"a\":1}\n\n");
  EXPECT_EQ(sse_done(), "data: [DONE]\n\n");
  // A newline inside a string stays escaped, so one event is one line.
  EXPECT_EQ(sse_event(OJson{{"t", "x\ny"}}).find('\n'), sse_event(OJson{{"t", "x\ny"}}).size() - 2);
}

}  // namespace
}  // namespace rf::server
