// An in-process server for end-to-end tests: a small synth model, the real engine and the real HTTP server on a
// loopback port, plus raw-socket and SSE helpers.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "model/model.h"
#include "model/probe_backend.h"
#include "runtime/engine.h"
#include "server/http_server.h"

namespace rf::server::test {

// Writes the synth model used by the server tests (once per process) and returns its path.
std::string synth_model_path();

struct TestServer {
  // Starts a server over its own engine; the model is attached unless `ready` is false. With `fault_injection`
  // the model runs through `probe` (tests/model/probe_backend.h), which can make a forward pass fail or lose its
  // device; the placement has a CPU fallback, as a GPU placement does.
  explicit TestServer(runtime::EngineOptions eo = {}, ServerOptions so = {}, bool ready = true,
                      bool fault_injection = false);
  ~TestServer();
  void attach();
  httplib::Client client() const;
  int port() const { return http->port(); }

  std::unique_ptr<backend::cpu::CpuBackend> be;
  std::unique_ptr<rf::test::ProbeBackend> probe;  // with fault_injection only
  std::unique_ptr<model::Model> model;
  std::unique_ptr<runtime::Engine> engine;
  std::shared_ptr<ServedModel> served;
  std::unique_ptr<HttpServer> http;
};

// Sends raw bytes to 127.0.0.1:port and returns what the server answers until it closes, or has sent a whole
// response with a Content-Length, or timeout_ms passed.
std::string raw_exchange(int port, const std::string& bytes, int timeout_ms = 5000);
// Connects to 127.0.0.1:port and sends bytes; the socket, or -1.
int connect_and_send(int port, const std::string& bytes);
// Reads from fd until the peer closes it (or timeout_ms), then closes fd.
std::string read_until_closed(int fd, int timeout_ms = 30000);
// The status code of a raw HTTP response (-1 when it is not one), and its body (chunked encoding undone).
int http_status(const std::string& response);
std::string http_body(const std::string& response);

// Opens a connection, POSTs `body` to `path` and waits until the first SSE event arrives (or the response ends
// when wait_first_event is false). Returns the socket (the caller closes it), or -1; what was read so far goes to
// `received` when given.
int open_stream(int port, const std::string& path, const std::string& body, bool wait_first_event = true,
                std::string* received = nullptr);
std::string http_post_request(const std::string& path, const std::string& body);

// The "data: ..." payloads of an SSE body, in order; fails the test on framing errors.
std::vector<std::string> sse_payloads(const std::string& body);

// Concatenated text of a streamed chat (delta.content) or completion (text) for choice `index`.
std::string streamed_text(const std::vector<std::string>& payloads, int index = 0);

// A short greedy completion answers 200 and, afterwards, the engine holds no sequence or KV block.
void expect_still_serving(TestServer& ts);

nlohmann::json post_json(httplib::Client& cli, const std::string& path, const nlohmann::json& body, int* status);

}  // namespace rf::server::test
