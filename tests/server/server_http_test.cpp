// End-to-end tests of the HTTP API against the real server and engine on a loopback port.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <thread>

#include "server_fixture.h"

namespace rf::server::test {
namespace {

using nlohmann::json;

json chat_body(const std::string& content, int max_tokens, json extra = json::object()) {
  json b = {{"model", "synth"},
            {"messages", json::array({{{"role", "user"}, {"content", content}}})},
            {"max_tokens", max_tokens}};
  b.update(extra);
  return b;
}

TEST(ServerHttp, HealthReadyAndModels) {
  TestServer ts({}, {}, /*ready=*/false);
  auto cli = ts.client();
  auto h = cli.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(cli.Get("/ready")->status, 503);
  int status = 0;
  EXPECT_EQ(post_json(cli, "/v1/completions", {{"prompt", "x"}}, &status)["error"]["code"], "server_overloaded");
  EXPECT_EQ(status, 503);
  ts.attach();
  EXPECT_EQ(cli.Get("/ready")->status, 200);
  const auto models = json::parse(cli.Get("/v1/models")->body);
  EXPECT_EQ(models["object"], "list");
  ASSERT_EQ(models["data"].size(), 1u);
  EXPECT_EQ(models["data"][0]["id"], "synth");
  EXPECT_EQ(models["data"][0]["object"], "model");
  EXPECT_EQ(cli.Get("/v1/models/synth")->status, 200);
  EXPECT_EQ(cli.Get("/v1/models/gpt-4")->status, 404);
}

TEST(ServerHttp, ChatAndCompletionResponsesHaveOpenAiShape) {
  TestServer ts;
  auto cli = ts.client();
  int status = 0;
  const auto c = post_json(cli, "/v1/chat/completions", chat_body("hello there", 5, {{"temperature", 0}}), &status);
  ASSERT_EQ(status, 200) << c.dump();
  EXPECT_EQ(c["object"], "chat.completion");
  EXPECT_EQ(c["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(c["model"], "synth");
  EXPECT_EQ(c["choices"][0]["message"]["role"], "assistant");
  EXPECT_TRUE(c["choices"][0]["message"]["content"].is_string());
  EXPECT_EQ(c["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(c["usage"]["completion_tokens"], 5);
  EXPECT_GT(c["usage"]["prompt_tokens"].get<int>(), 5);
  // Sampled at the default temperature: ignore_eos, or a choice that draws the end-of-text token stops short of 3.
  const auto t = post_json(cli, "/v1/completions",
                           {{"prompt", "the cat"}, {"max_tokens", 3}, {"n", 2}, {"ignore_eos", true}}, &status);
  ASSERT_EQ(status, 200) << t.dump();
  EXPECT_EQ(t["object"], "text_completion");
  ASSERT_EQ(t["choices"].size(), 2u);
  EXPECT_EQ(t["choices"][1]["index"], 1);
  EXPECT_EQ(t["usage"]["completion_tokens"], 6);
  const auto tok =
      post_json(cli, "/v1/completions", {{"prompt", json::array({1, 50, 60})}, {"max_tokens", 2}}, &status);
  EXPECT_EQ(status, 200) << tok.dump();
  EXPECT_EQ(tok["usage"]["prompt_tokens"], 3);
}

TEST(ServerHttp, StreamingTextEqualsNonStreamingTextAtSameSeed) {
  TestServer ts;
  auto cli = ts.client();
  for (const char* path : {"/v1/chat/completions", "/v1/completions"}) {
    json body = std::string(path) == "/v1/completions" ? json{{"prompt", "one two three"}, {"max_tokens", 24}}
                                                       : chat_body("tell me a story", 24);
    body["temperature"] = 1.0;
    body["seed"] = 4242;
    int status = 0;
    const auto whole = post_json(cli, path, body, &status);
    ASSERT_EQ(status, 200);
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
    auto r = cli.Post(path, body.dump(), "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->get_header_value("Content-Type").rfind("text/event-stream", 0), 0u);
    const auto events = sse_payloads(r->body);
    ASSERT_GE(events.size(), 3u);
    EXPECT_EQ(events.back(), "[DONE]");
    const auto usage = json::parse(events[events.size() - 2]);
    EXPECT_TRUE(usage["choices"].empty());
    EXPECT_EQ(usage["usage"]["completion_tokens"], whole["usage"]["completion_tokens"]);
    const std::string expected = whole["choices"][0].contains("message")
                                     ? whole["choices"][0]["message"]["content"].get<std::string>()
                                     : whole["choices"][0]["text"].get<std::string>();
    EXPECT_EQ(streamed_text(events), expected) << path;
    if (std::string(path) == "/v1/chat/completions") {
      EXPECT_EQ(json::parse(events[0])["choices"][0]["delta"]["role"], "assistant");
    }
    const auto last = json::parse(events[events.size() - 3]);
    EXPECT_EQ(last["choices"][0]["finish_reason"], "length");
  }
}

TEST(ServerHttp, GreedyTextDoesNotDependOnLoad) {
  runtime::EngineOptions eo;
  eo.max_running = 32;
  eo.step_tokens = 64;
  TestServer ts(eo);
  const json probe = {{"prompt", "a quiet morning by the sea"}, {"max_tokens", 16}, {"temperature", 0}};
  auto cli = ts.client();
  int status = 0;
  const auto alone = post_json(cli, "/v1/completions", probe, &status);
  ASSERT_EQ(status, 200);
  std::vector<std::future<std::string>> others;
  for (int i = 0; i < 31; ++i) {
    others.push_back(std::async(std::launch::async, [&ts, i] {
      auto c = ts.client();
      json b = {{"prompt", "noise " + std::to_string(i * 7919)},
                {"max_tokens", 12 + i % 5},
                {"temperature", 0.7},
                {"seed", i},
                {"stream", i % 2 == 0}};
      auto r = c.Post("/v1/completions", b.dump(), "application/json");
      return r ? std::to_string(r->status) : "fail: " + httplib::to_string(r.error());
    }));
  }
  const auto loaded = post_json(cli, "/v1/completions", probe, &status);
  ASSERT_EQ(status, 200);
  for (auto& f : others) EXPECT_EQ(f.get(), "200");
  EXPECT_EQ(loaded["choices"][0]["text"], alone["choices"][0]["text"]);
  EXPECT_GT(ts.engine->stats().max_batch_sequences, 1);
}

TEST(ServerHttp, StopStringCutsTextAndIsNeverEmitted) {
  TestServer ts;
  auto cli = ts.client();
  int status = 0;
  const json base = {{"prompt", "stop here please"}, {"max_tokens", 40}, {"temperature", 0}};
  const auto full = post_json(cli, "/v1/completions", base, &status)["choices"][0]["text"].get<std::string>();
  ASSERT_GE(full.size(), 12u) << full;
  size_t at = full.size() / 2;  // an ASCII window, so that the stop string is valid UTF-8
  while (at + 3 < full.size() &&
         (static_cast<unsigned char>(full[at]) >= 0x80 || static_cast<unsigned char>(full[at + 1]) >= 0x80 ||
          static_cast<unsigned char>(full[at + 2]) >= 0x80)) {
    ++at;
  }
  const std::string stop = full.substr(at, 3);
  const std::string expected = full.substr(0, full.find(stop));
  json body = base;
  body["stop"] = json::array({stop, "\x01never"});
  const auto cut = post_json(cli, "/v1/completions", body, &status);
  EXPECT_EQ(cut["choices"][0]["text"], expected);
  EXPECT_EQ(cut["choices"][0]["finish_reason"], "stop");
  body["stream"] = true;
  auto r = cli.Post("/v1/completions", body.dump(), "application/json");
  ASSERT_TRUE(r);
  const auto events = sse_payloads(r->body);
  EXPECT_EQ(streamed_text(events), expected);
}

TEST(ServerHttp, LogprobsInBothFormats) {
  TestServer ts;
  auto cli = ts.client();
  int status = 0;
  const auto c = post_json(cli, "/v1/chat/completions",
                           chat_body("hi", 4, {{"temperature", 0}, {"logprobs", true}, {"top_logprobs", 3}}), &status);
  ASSERT_EQ(status, 200) << c.dump();
  const auto& content = c["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 4u);
  std::string joined;
  for (const auto& e : content) {
    EXPECT_LE(e["logprob"].get<double>(), 0.0);
    EXPECT_EQ(e["top_logprobs"].size(), 3u);
    EXPECT_EQ(e["top_logprobs"][0]["token"], e["token"]);
    EXPECT_TRUE(e["bytes"].is_array());
    joined += e["token"].get<std::string>();
  }
  EXPECT_EQ(joined, c["choices"][0]["message"]["content"]);
  const auto t = post_json(cli, "/v1/completions", {{"prompt", "abc"}, {"max_tokens", 3}, {"logprobs", 2}}, &status);
  const auto& lp = t["choices"][0]["logprobs"];
  EXPECT_EQ(lp["tokens"].size(), 3u);
  EXPECT_EQ(lp["token_logprobs"].size(), 3u);
  EXPECT_EQ(lp["text_offset"][0], 0);
  EXPECT_LE(lp["top_logprobs"][0].size(), 2u);
}

TEST(ServerHttp, ErrorStatusesAndBodies) {
  ServerOptions so;
  so.max_body_bytes = 64 * 1024;
  runtime::EngineOptions eo;
  eo.ctx_size = 64;
  TestServer ts(eo, so);
  auto cli = ts.client();
  int status = 0;
  auto e = post_json(cli, "/v1/chat/completions", {{"messages", "nope"}}, &status);
  EXPECT_EQ(status, 400);
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  EXPECT_EQ(e["error"]["param"], "messages");
  e = post_json(cli, "/v1/completions", {{"prompt", "x"}, {"model", "gpt-4"}}, &status);
  EXPECT_EQ(status, 404);
  EXPECT_EQ(e["error"]["code"], "model_not_found");
  e = post_json(cli, "/v1/completions", {{"prompt", json::array({1, 100000})}}, &status);
  EXPECT_EQ(status, 400) << e.dump();
  std::string long_prompt;
  for (int i = 0; i < 200; ++i) long_prompt += "word ";
  e = post_json(cli, "/v1/completions", {{"prompt", long_prompt}}, &status);
  EXPECT_EQ(status, 400);
  EXPECT_EQ(e["error"]["code"], "context_length_exceeded");
  auto r = cli.Get("/v2/unknown");
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "unknown_url");
  r = cli.Post("/v1/completions", std::string(100 * 1024, ' '), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "request_too_large");
}

TEST(ServerHttp, MaxTokensBeyondTheContextGeneratesUntilItIsFullAndEndsWithLength) {
  runtime::EngineOptions eo;
  eo.ctx_size = 48;
  eo.stop_tokens = {-1};  // only the context ends these generations
  TestServer ts(eo);
  auto cli = ts.client();
  const json prompt = json::array({1, 17, 99, 250, 3, 42, 7, 300, 12, 8});  // 10 tokens: room for 38
  for (const json& max_tokens : {json(1000), json(38), json(nullptr)}) {
    json body = {{"prompt", prompt}, {"n", 2}};
    if (!max_tokens.is_null()) body["max_tokens"] = max_tokens;
    int status = 0;
    const auto r = post_json(cli, "/v1/completions", body, &status);
    ASSERT_EQ(status, 200) << r.dump();
    for (const auto& c : r["choices"]) EXPECT_EQ(c["finish_reason"], "length") << max_tokens;
    EXPECT_EQ(r["usage"]["prompt_tokens"], 10);
    EXPECT_EQ(r["usage"]["completion_tokens"], 2 * 38) << max_tokens;
    EXPECT_EQ(r["usage"]["total_tokens"], 10 + 2 * 38);
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
    auto s = cli.Post("/v1/completions", body.dump(), "application/json");
    ASSERT_TRUE(s);
    const auto events = sse_payloads(s->body);
    ASSERT_GE(events.size(), 2u);
    const auto usage = json::parse(events[events.size() - 2])["usage"];
    for (const char* k : {"prompt_tokens", "completion_tokens", "total_tokens"}) EXPECT_EQ(usage[k], r["usage"][k]);
  }
  // One token short of the room: max_tokens decides, still "length".
  int status = 0;
  const auto r = post_json(cli, "/v1/completions", {{"prompt", prompt}, {"max_tokens", 37}}, &status);
  EXPECT_EQ(r["usage"]["completion_tokens"], 37);
  EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
}

TEST(ServerHttp, SecondServerCannotTakeTheSamePort) {
  TestServer ts;
  ServerOptions so;
  so.port = ts.port();
  HttpServer other(so);
  EXPECT_FALSE(other.bind().ok()) << "a second server on port " << ts.port() << " would take part of its connections";
  auto cli = ts.client();
  EXPECT_EQ(cli.Get("/health")->status, 200);
}

TEST(ServerHttp, ApiKeyRequiredOnV1Routes) {
  ServerOptions so;
  so.api_key = "sekrit";
  TestServer ts({}, so);
  auto cli = ts.client();
  EXPECT_EQ(cli.Get("/health")->status, 200);
  auto r = cli.Get("/v1/models");
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "invalid_api_key");
  EXPECT_EQ(cli.Get("/v1/models", {{"Authorization", "Bearer wrong"}})->status, 401);
  EXPECT_EQ(cli.Get("/v1/models", {{"Authorization", "Bearer sekrit"}})->status, 200);
}

TEST(ServerHttp, FullQueueAnswers503) {
  runtime::EngineOptions eo;
  eo.max_running = 1;
  eo.max_waiting = 1;
  eo.ctx_size = 1 << 16;  // the running stream must not end by itself during the test
  eo.kv_slots = 1 << 16;
  eo.stop_tokens = {-1};  // sampled streams would otherwise end whenever they draw an end-of-generation token
  TestServer ts(eo);
  // One long stream runs, one waits; the next request finds the queue full.
  const json long_req = {{"prompt", "go"}, {"max_tokens", 60000}, {"stream", true}};
  const int a = open_stream(ts.port(), "/v1/completions", long_req.dump());
  const int b = open_stream(ts.port(), "/v1/completions", long_req.dump(), /*wait_first_event=*/false);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  // Keep reading both streams: a client that stops reading would be a stalled client, which the server may drop.
  std::atomic<bool> stop_draining{false};
  std::thread drainer([&] {
    char buf[4096];
    while (!stop_draining) {
      pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
      if (poll(p, 2, 20) <= 0) continue;
      for (const auto& q : p) {
        if (q.revents & POLLIN) (void)recv(q.fd, buf, sizeof buf, 0);
      }
    }
  });
  for (int i = 0; i < 500 && (ts.engine->stats().running < 1 || ts.engine->stats().waiting < 1); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  auto cli = ts.client();
  int status = 0;
  const auto e = post_json(cli, "/v1/completions", {{"prompt", "x"}, {"max_tokens", 2}}, &status);
  EXPECT_EQ(status, 503) << e.dump();
  EXPECT_EQ(e["error"]["code"], "server_overloaded");
  stop_draining = true;
  drainer.join();
  close(a);
  close(b);
}

TEST(ServerHttp, MetricsCountRequestsAndTokens) {
  TestServer ts;
  auto cli = ts.client();
  int status = 0;
  post_json(cli, "/v1/completions", {{"prompt", "abc"}, {"max_tokens", 3}}, &status);
  post_json(cli, "/v1/completions", {{"prompt", 1}}, &status);
  // Requests are counted once their response is written, so the count may trail the client by a moment.
  std::string body;
  for (int i = 0; i < 100 && body.find("status=\"400\"} 1") == std::string::npos; ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    auto r = cli.Get("/metrics");
    ASSERT_TRUE(r);
    body = r->body;
  }
  const auto* m = &body;
  EXPECT_NE(m->find("rocmforge_requests_total{endpoint=\"/v1/completions\",status=\"200\"} 1"), std::string::npos)
      << *m;
  EXPECT_NE(m->find("rocmforge_requests_total{endpoint=\"/v1/completions\",status=\"400\"} 1"), std::string::npos);
  EXPECT_NE(m->find("rocmforge_generation_tokens_total 3"), std::string::npos);
  EXPECT_NE(m->find("rocmforge_time_to_first_token_seconds_count 1"), std::string::npos);
  EXPECT_NE(m->find("rocmforge_kv_cache_blocks{state=\"used\"}"), std::string::npos);
}

}  // namespace
}  // namespace rf::server::test
