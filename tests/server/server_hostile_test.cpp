// Hostile clients: malformed and oversized input, slow and vanishing clients. After each, the server must still
// answer correctly and the engine must hold no leftover sequences or KV blocks.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "server_fixture.h"

namespace rf::server::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

std::string http_post(const std::string& path, const std::string& body) { return http_post_request(path, body); }

TEST(ServerHostile, BadBodiesGet400NeverA500) {
  TestServer ts;
  const std::string bodies[] = {
      "{",
      "]",
      "nul",
      "{\"messages\": [{\"role\": \"user\", \"content\": \"\xc3\x28 bad utf8\"}]}",
      "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_tokens\": 1e400}",
      "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"max_tokens\": 99999999999999999999999}",
      "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"temperature\": -1e308}",
      "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"n\": 1e9}",
      "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stop\": {\"a\": 1}}",
      "{\"messages\": [{\"role\": \"user\", \"content\": [1, 2]}]}",
      "{\"messages\": [null]}",
      std::string(20000, '[') + std::string(20000, ']'),
      "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"logprobs\": true, \"top_logprobs\": -1}",
      std::string("{\"prompt\": \"a\0b\"}", 16),
  };
  for (const auto& b : bodies) {
    const auto resp = raw_exchange(ts.port(), http_post("/v1/chat/completions", b));
    const int st = http_status(resp);
    EXPECT_EQ(st, 400) << b.substr(0, 60) << " -> " << resp.substr(0, 200);
    EXPECT_NE(resp.find("\"error\""), std::string::npos);
  }
  // Completions with an invalid UTF-8 prompt inside an otherwise valid body: rejected by the JSON parser.
  EXPECT_EQ(http_status(raw_exchange(ts.port(), http_post("/v1/completions", "{\"prompt\": \"\xff\xfe\"}"))), 400);
  expect_still_serving(ts);
}

TEST(ServerHostile, GarbageHttpAndHugeBodies) {
  ServerOptions so;
  so.read_timeout_s = 1;  // the unterminated request line and the missing body end at the read timeout
  TestServer ts({}, so);
  EXPECT_NE(http_status(raw_exchange(ts.port(), "THIS IS NOT HTTP\r\n\r\n", 2000)), 500);
  EXPECT_NE(http_status(raw_exchange(ts.port(), std::string(64 * 1024, 'A'), 2000)), 500);
  // 10 MB body: refused with 413 (the limit is 4 MiB), without reading it all.
  const std::string big(10 << 20, 'x');
  const auto resp = raw_exchange(ts.port(), http_post("/v1/completions", big), 5000);
  EXPECT_EQ(http_status(resp), 413) << resp.substr(0, 200);
  // A declared length far beyond the limit with no body at all.
  const auto lie =
      raw_exchange(ts.port(), "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n", 3000);
  EXPECT_EQ(http_status(lie), 413) << lie.substr(0, 200);
  expect_still_serving(ts);
}

TEST(ServerHostile, SlowClientDoesNotBlockOthers) {
  TestServer ts;  // read timeout 2 s
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(ts.port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string partial = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pro";
  ASSERT_GT(send(fd, partial.data(), partial.size(), MSG_NOSIGNAL), 0);
  expect_still_serving(ts);  // served while the slow client holds its connection
  close(fd);
}

TEST(ServerHostile, DisconnectMidStreamCancelsTheSequence) {
  runtime::EngineOptions eo;
  eo.ctx_size = 4096;
  eo.kv_slots = 8192;
  eo.stop_tokens = {-1};  // a sampled stream could otherwise end by itself before the client vanishes
  TestServer ts(eo);
  for (int round = 0; round < 3; ++round) {
    const json body = {{"prompt", "a long story"}, {"max_tokens", 4000}, {"stream", true}};
    const int fd = open_stream(ts.port(), "/v1/completions", body.dump());
    ASSERT_GE(fd, 0);
    EXPECT_GE(ts.engine->stats().running, 1);
    close(fd);  // vanish mid-stream
    for (int i = 0; i < 500 && ts.engine->stats().running > 0; ++i) std::this_thread::sleep_for(10ms);
    EXPECT_EQ(ts.engine->stats().running, 0) << "round " << round;
    EXPECT_EQ(ts.engine->stats().kv_blocks_used, 0);
  }
  expect_still_serving(ts);
}

TEST(ServerHostile, ManyParallelMixedRequestsAllAnswered) {
  runtime::EngineOptions eo;
  eo.max_running = 4;
  TestServer ts(eo);
  std::vector<std::thread> ts_threads;
  std::atomic<int> ok{0}, bad{0};
  for (int i = 0; i < 12; ++i) {
    ts_threads.emplace_back([&, i] {
      auto c = ts.client();
      json req = {{"max_tokens", 4}, {"stream", i % 2 == 0}};
      req["prompt"] = std::string("p") + std::to_string(i);
      const std::string body = i % 3 == 0 ? std::string("{broken") : req.dump();
      auto r = c.Post("/v1/completions", body, "application/json");
      if (r && (r->status == 200 || r->status == 400))
        ++ok;
      else
        ++bad;
    });
  }
  for (auto& t : ts_threads) t.join();
  EXPECT_EQ(ok.load(), 12);
  EXPECT_EQ(bad.load(), 0);
  expect_still_serving(ts);
}

}  // namespace
}  // namespace rf::server::test
