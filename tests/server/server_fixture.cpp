#include "server_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "server/response.h"
#include "support/tiny_synth_model.h"

namespace rf::server::test {

std::string synth_model_path() { return rf::test::tiny_synth_model("server_test_synth", 400, 512); }

TestServer::TestServer(runtime::EngineOptions eo, ServerOptions so, bool ready, bool fault_injection) {
  be = std::make_unique<backend::cpu::CpuBackend>(2);
  if (fault_injection) probe = std::make_unique<rf::test::ProbeBackend>(*be, "probe");
  auto file = gguf::File::open(synth_model_path());
  EXPECT_TRUE(file.ok()) << file.error_message();
  model::Placement placement;
  placement.first = probe ? static_cast<backend::Backend*>(probe.get()) : be.get();
  // As the GPU placements of device_select: a device lost for good moves the model to a new CPU backend.
  placement.fallback = []() -> std::unique_ptr<backend::Backend> {
    return std::make_unique<backend::cpu::CpuBackend>(2);
  };
  auto m = model::Model::load(*file, std::move(placement));
  EXPECT_TRUE(m.ok()) << m.error_message();
  model = std::move(*m);
  if (eo.ctx_size == 0) eo.ctx_size = 256;
  auto tok = tokenizer::Tokenizer::from_gguf(model->file());
  EXPECT_TRUE(tok.ok()) << tok.error_message();
  // Tests that need endless streams pass their own stop list (e.g. {-1}: nothing stops them).
  if (eo.stop_tokens.empty()) {
    for (int32_t id : (*tok)->vocab().eog) eo.stop_tokens.push_back(id);
  }
  auto e = runtime::Engine::create(*model, eo);
  EXPECT_TRUE(e.ok()) << e.error_message();
  engine = std::move(*e);
  served = std::make_shared<ServedModel>();
  served->id = "synth";
  served->aliases = {"synth.gguf"};
  served->created = unix_time_now();
  served->engine = engine.get();
  served->tokenizer = *tok;
  served->bos_text = (*tok)->token_text((*tok)->bos());
  served->eos_text = (*tok)->token_text((*tok)->eos());
  auto t = chat::ChatTemplate::parse(fallback_chat_template());
  EXPECT_TRUE(t.ok()) << t.error_message();
  served->chat_template = std::move(*t);
  so.port = 0;
  // Short timeouts (unless the test chose its own), so that tests of stalled clients do not wait long.
  if (so.read_timeout_s == ServerOptions{}.read_timeout_s) so.read_timeout_s = 2;
  if (so.write_timeout_s == ServerOptions{}.write_timeout_s) so.write_timeout_s = 2;
  http = std::make_unique<HttpServer>(so);
  const Status s = http->bind();
  EXPECT_TRUE(s.ok()) << s.message();
  if (ready) attach();
  http->start_background();
}

void TestServer::attach() { http->set_model(served); }

TestServer::~TestServer() {
  engine->shutdown(std::chrono::milliseconds(0));
  http->stop();
}

httplib::Client TestServer::client() const {
  httplib::Client c("127.0.0.1", http->port());
  c.set_read_timeout(30, 0);
  return c;
}

int connect_and_send(int port, const std::string& bytes) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  return fd;
}

std::string http_post_request(const std::string& path, const std::string& body) {
  return "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n" +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

int open_stream(int port, const std::string& path, const std::string& body, bool wait_first_event,
                std::string* received) {
  const int fd = connect_and_send(port, http_post_request(path, body));
  if (fd < 0 || !wait_first_event) return fd;
  std::string got;
  char buf[2048];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (got.find("data: ") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  if (received) *received = std::move(got);
  return fd;
}

namespace {

// True when `r` holds a whole response with a Content-Length body (a kept-alive connection stays open after it).
bool complete_response(const std::string& r) {
  const size_t head_end = r.find("\r\n\r\n");
  if (head_end == std::string::npos) return false;
  std::string head = r.substr(0, head_end);
  for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const size_t at = head.find("\r\ncontent-length: ");
  if (at == std::string::npos) return false;
  return r.size() - head_end - 4 >= std::stoul(head.substr(at + 18));
}

std::string read_response(int fd, int timeout_ms, bool until_closed) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buf[4096];
  while (std::chrono::steady_clock::now() < deadline && (until_closed || !complete_response(out))) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

}  // namespace

std::string raw_exchange(int port, const std::string& bytes, int timeout_ms) {
  const int fd = connect_and_send(port, bytes);
  return fd < 0 ? std::string() : read_response(fd, timeout_ms, /*until_closed=*/false);
}

std::string read_until_closed(int fd, int timeout_ms) { return read_response(fd, timeout_ms, /*until_closed=*/true); }

int http_status(const std::string& response) {
  if (response.rfind("HTTP/1.1 ", 0) != 0 || response.size() < 12) return -1;
  return std::atoi(response.substr(9, 3).c_str());
}

std::string http_body(const std::string& response) {
  const size_t head_end = response.find("\r\n\r\n");
  if (head_end == std::string::npos) return {};
  std::string head = response.substr(0, head_end);
  for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const std::string raw = response.substr(head_end + 4);
  if (head.find("transfer-encoding: chunked") == std::string::npos) return raw;
  std::string body;
  size_t pos = 0;
  while (pos < raw.size()) {
    const size_t eol = raw.find("\r\n", pos);
    if (eol == std::string::npos) break;
    const size_t n = std::stoul(raw.substr(pos, eol - pos), nullptr, 16);
    if (n == 0) return body;
    body += raw.substr(eol + 2, n);
    pos = eol + 2 + n + 2;
  }
  ADD_FAILURE() << "chunked body without its terminating chunk: ..."
                << raw.substr(raw.size() > 200 ? raw.size() - 200 : 0);
  return body;
}

std::vector<std::string> sse_payloads(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) {
      ADD_FAILURE() << "SSE body does not end with a blank line: " << body.substr(pos, 200);
      break;
    }
    const std::string ev = body.substr(pos, end - pos);
    EXPECT_EQ(ev.rfind("data: ", 0), 0u) << ev;
    EXPECT_EQ(ev.find('\n'), std::string::npos) << "one line per event: " << ev;
    out.push_back(ev.substr(6));
    pos = end + 2;
  }
  return out;
}

std::string streamed_text(const std::vector<std::string>& payloads, int index) {
  std::string text;
  for (const auto& p : payloads) {
    if (p == "[DONE]") continue;
    const auto j = nlohmann::json::parse(p);
    for (const auto& c : j["choices"]) {
      if (c["index"] != index) continue;
      if (c.contains("delta") && c["delta"].contains("content")) text += c["delta"]["content"].get<std::string>();
      if (c.contains("text")) text += c["text"].get<std::string>();
    }
  }
  return text;
}

nlohmann::json post_json(httplib::Client& cli, const std::string& path, const nlohmann::json& body, int* status) {
  auto r = cli.Post(path.c_str(), body.dump(), "application/json");
  if (!r) {
    *status = -1;
    return {};
  }
  *status = r->status;
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  return j.is_discarded() ? nlohmann::json(r->body) : j;
}

void expect_still_serving(TestServer& ts) {
  auto cli = ts.client();
  int status = 0;
  // Greedy, so that the answer is the same every run (a sampled one may draw an end-of-generation token at once).
  const auto r =
      post_json(cli, "/v1/completions", {{"prompt", "still alive"}, {"max_tokens", 2}, {"temperature", 0}}, &status);
  EXPECT_EQ(status, 200) << r.dump();
  EXPECT_EQ(r["usage"]["completion_tokens"], 2);
  for (int i = 0; i < 1000 && (ts.engine->stats().running > 0 || ts.engine->stats().kv_blocks_used > 0); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(ts.engine->stats().running, 0);
  EXPECT_EQ(ts.engine->stats().waiting, 0);
  EXPECT_EQ(ts.engine->stats().kv_blocks_used, 0);
}

}  // namespace rf::server::test
