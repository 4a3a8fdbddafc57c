// Requests that end early: a non-streaming client that goes away, the server shutting down under running requests,
// and a forward pass that fails. Each must end with a well-formed answer (or none, for a client that left), free
// its sequences' KV blocks at once, and leave the server serving.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "server_fixture.h"

namespace rf::server::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// Polls `done` every 5 ms for up to `timeout`; true once it holds.
template <typename F>
bool eventually(F done, std::chrono::milliseconds timeout = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

runtime::EngineOptions endless(int max_running) {
  runtime::EngineOptions eo;
  eo.max_running = max_running;
  eo.ctx_size = 1 << 15;  // generations far longer than any test: only the event under test ends them
  eo.kv_slots = 1 << 16;
  eo.stop_tokens = {-1};
  return eo;
}

TEST(ServerLifecycle, NonStreamingClientThatLeavesIsCancelledAtOnce) {
  TestServer ts(endless(1));
  const json body = {{"prompt", "a very long story"}, {"max_tokens", 30000}};
  // One request generating, one queued behind it (max_running 1): both clients vanish before any answer.
  const int running = connect_and_send(ts.port(), http_post_request("/v1/completions", body.dump()));
  ASSERT_GE(running, 0);
  ASSERT_TRUE(eventually([&] { return ts.engine->stats().running == 1; }));
  const int queued = connect_and_send(
      ts.port(),
      http_post_request("/v1/chat/completions",
                        json{{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"max_tokens", 30000}}.dump()));
  ASSERT_GE(queued, 0);
  ASSERT_TRUE(eventually([&] { return ts.engine->stats().waiting == 1; }));
  EXPECT_GT(ts.engine->stats().kv_blocks_used, 0);
  close(queued);
  close(running);
  // 30000 tokens take far longer than this wait: only the cancellation can empty the engine in time.
  EXPECT_TRUE(eventually(
      [&] {
        const auto st = ts.engine->stats();
        return st.running == 0 && st.waiting == 0 && st.kv_blocks_used == 0;
      },
      10s))
      << "running " << ts.engine->stats().running << ", waiting " << ts.engine->stats().waiting;
  expect_still_serving(ts);
  // The vanished requests are counted as 499 (client closed request).
  EXPECT_TRUE(eventually([&] {
    auto cli = ts.client();
    auto r = cli.Get("/metrics");
    return r && r->body.find("status=\"499\"} 1") != std::string::npos &&
           r->body.find("endpoint=\"/v1/chat/completions\",status=\"499\"} 1") != std::string::npos;
  }));
}

TEST(ServerLifecycle, QueuedStreamingClientThatLeavesLeavesTheQueue) {
  TestServer ts(endless(1));
  const json body = {{"prompt", "a very long story"}, {"max_tokens", 30000}};
  const int running = connect_and_send(ts.port(), http_post_request("/v1/completions", body.dump()));
  ASSERT_GE(running, 0);
  ASSERT_TRUE(eventually([&] { return ts.engine->stats().running == 1; }));
  json sbody = body;
  sbody["stream"] = true;  // a completion stream writes nothing while it waits for admission
  const int queued = open_stream(ts.port(), "/v1/completions", sbody.dump(), /*wait_first_event=*/false);
  ASSERT_GE(queued, 0);
  ASSERT_TRUE(eventually([&] { return ts.engine->stats().waiting == 1; }));
  close(queued);
  EXPECT_TRUE(eventually([&] { return ts.engine->stats().waiting == 0; }, 10s));
  EXPECT_EQ(ts.engine->stats().running, 1);  // the other one generates on
  close(running);
  EXPECT_TRUE(eventually([&] { return ts.engine->stats().running == 0 && ts.engine->stats().kv_blocks_used == 0; }));
}

TEST(ServerLifecycle, ShutdownGivesStreamsAFinishChunkAndAnErrorAndOthersA503) {
  TestServer ts(endless(4));
  const json chat = {{"messages", {{{"role", "user"}, {"content", "tell me everything"}}}},
                     {"max_tokens", 30000},
                     {"stream", true},
                     {"stream_options", {{"include_usage", true}}}};
  std::string streamed;
  const int stream = open_stream(ts.port(), "/v1/chat/completions", chat.dump(), true, &streamed);
  ASSERT_GE(stream, 0);
  const int whole = connect_and_send(
      ts.port(), http_post_request("/v1/completions", json{{"prompt", "go"}, {"max_tokens", 30000}}.dump()));
  ASSERT_GE(whole, 0);
  ASSERT_TRUE(eventually([&] { return ts.engine->stats().running == 2; }));
  // What `rocmforge serve` does on SIGTERM with no grace left: end the sequences, let the answers be written.
  ts.engine->shutdown(0ms);
  EXPECT_TRUE(ts.http->drain(10s));
  EXPECT_EQ(ts.engine->stats().kv_blocks_used, 0);

  streamed += read_until_closed(stream);
  ASSERT_EQ(http_status(streamed), 200) << streamed.substr(0, 300);
  const auto events = sse_payloads(http_body(streamed));
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back(), "[DONE]");
  const auto error = json::parse(events[events.size() - 2]);
  EXPECT_EQ(error["error"]["type"], "server_error") << error.dump();
  EXPECT_EQ(error["error"]["code"], "server_shutting_down");
  const auto usage = json::parse(events[events.size() - 3]);
  EXPECT_TRUE(usage["choices"].empty());
  const auto finish = json::parse(events[events.size() - 4]);
  EXPECT_EQ(finish["choices"][0]["finish_reason"], "stop") << finish.dump();
  int64_t chunks_with_text = 0;
  for (const auto& e : events) chunks_with_text += e.find("\"content\"") != std::string::npos ? 1 : 0;
  EXPECT_EQ(usage["usage"]["completion_tokens"].get<int64_t>() > 0, chunks_with_text > 0);

  const std::string answered = read_until_closed(whole);
  EXPECT_EQ(http_status(answered), 503) << answered.substr(0, 300);
  const auto err = json::parse(http_body(answered));
  EXPECT_EQ(err["error"]["code"], "server_shutting_down") << err.dump();
  EXPECT_EQ(err["error"]["type"], "server_error");
  EXPECT_NE(answered.find("Retry-After: 1"), std::string::npos);

  // New requests are refused the same way while the listener is still up.
  auto cli = ts.client();
  int status = 0;
  const auto late = post_json(cli, "/v1/completions", {{"prompt", "x"}, {"max_tokens", 2}}, &status);
  EXPECT_EQ(status, 503);
  EXPECT_EQ(late["error"]["code"], "server_shutting_down");
}

// Ops of one forward pass of the server's model (the engine is idle afterwards: stats() orders the probe's counters
// after the scheduler thread's last pass).
int64_t ops_per_pass(TestServer& ts) {
  auto cli = ts.client();
  int status = 0;
  const json one = {{"prompt", json::array({1, 2, 3})}, {"max_tokens", 1}};
  post_json(cli, "/v1/completions", one, &status);  // the first pass may set things up
  ts.engine->stats();
  const int64_t before = ts.probe->ops_seen();
  post_json(cli, "/v1/completions", one, &status);
  EXPECT_EQ(status, 200);
  ts.engine->stats();
  return ts.probe->ops_seen() - before;
}

// POSTs a long completion that the armed fault fails: a 500 server_error whose message names the failed pass and
// `cause`.
void expect_failed_completion(httplib::Client& cli, const std::string& cause) {
  int status = 0;
  const auto e = post_json(cli, "/v1/completions", {{"prompt", "doomed"}, {"max_tokens", 1000}}, &status);
  EXPECT_EQ(status, 500) << e.dump();
  EXPECT_EQ(e["error"]["type"], "server_error");
  const std::string msg = e["error"]["message"].get<std::string>();
  EXPECT_NE(msg.find("forward pass failed"), std::string::npos) << msg;
  EXPECT_NE(msg.find(cause), std::string::npos) << msg;
}

TEST(ServerLifecycle, FailingForwardPassAnswersServerErrorAndTheServerGoesOn) {
  TestServer ts(endless(2), {}, /*ready=*/true, /*fault_injection=*/true);
  const int64_t per_pass = ops_per_pass(ts);
  ASSERT_GT(per_pass, 0);
  // The engine is idle: armed now, the fault lands in the middle of the third pass of the next request.
  ts.probe->fail_op_in(2 * per_pass + per_pass / 2);
  auto cli = ts.client();
  expect_failed_completion(cli, "injected fault");
  ASSERT_TRUE(eventually([&] { return ts.engine->stats().running == 0; }));
  EXPECT_EQ(ts.engine->stats().kv_blocks_used, 0);

  // A stream that fails after two tokens: its text so far, then an OpenAI error object and [DONE].
  ts.probe->fail_op_in(2 * per_pass + per_pass / 2);
  const json sbody = {{"prompt", "doomed too"}, {"max_tokens", 1000}, {"stream", true}};
  auto r = cli.Post("/v1/completions", sbody.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  const auto events = sse_payloads(r->body);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.back(), "[DONE]");
  const auto err = json::parse(events[events.size() - 2]);
  EXPECT_EQ(err["error"]["type"], "server_error") << err.dump();
  EXPECT_NE(err["error"]["message"].get<std::string>().find("injected fault"), std::string::npos);
  int text_chunks = 0;
  for (size_t i = 0; i + 2 < events.size(); ++i) {
    const auto c = json::parse(events[i]);
    EXPECT_TRUE(c["choices"][0]["finish_reason"].is_null()) << "no normal finish for a failed choice: " << events[i];
    ++text_chunks;
  }
  EXPECT_LE(text_chunks, 2);

  expect_still_serving(ts);
}

// The device is lost and cannot be reset: the request in flight fails with a 500, the model moves to the CPU
// fallback, /ready stays 200 but says the server is degraded, /metrics shows the fallback, and requests succeed.
TEST(ServerLifecycle, DeviceLostForGoodMovesToTheCpuAndTheServerGoesOn) {
  TestServer ts(endless(2), {}, /*ready=*/true, /*fault_injection=*/true);
  const int64_t per_pass = ops_per_pass(ts);
  ASSERT_GT(per_pass, 0);
  ts.probe->fail_resets(true);
  ts.probe->lose_device_in(2 * per_pass + per_pass / 2);
  auto cli = ts.client();
  expect_failed_completion(cli, "injected device loss");
  ASSERT_TRUE(eventually([&] { return ts.engine->stats().device_fallback; }));
  auto ready = cli.Get("/ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
  const json rj = json::parse(ready->body);
  EXPECT_EQ(rj["status"], "ready");
  EXPECT_NE(rj.value("degraded", "").find("running on the CPU"), std::string::npos) << ready->body;
  auto metrics = cli.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("\nrocmforge_device_fallback 1\n"), std::string::npos);
  EXPECT_NE(metrics->body.find("\nrocmforge_device_lost 0\n"), std::string::npos);
  expect_still_serving(ts);
  EXPECT_FALSE(ts.engine->stats().device_unusable);
}

}  // namespace
}  // namespace rf::server::test
