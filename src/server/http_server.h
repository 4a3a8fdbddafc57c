// The OpenAI-compatible HTTP server (cpp-httplib): routes, API-key check, OpenAI error bodies for every failure
// (404 unknown route, 413 oversized body, ...), /health, /ready, /metrics, /v1/models, and the two generation
// endpoints (completion_handler.cpp). The model is attached once loaded; until then /ready and the generation
// endpoints answer 503.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "chat/chat_template.h"
#include "core/status.h"
#include "runtime/engine.h"
#include "server/metrics.h"
#include "tokenizer/tokenizer.h"

namespace httplib {
class Server;
}

namespace rf::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;      // 0: any free port (see HttpServer::port())
  std::string api_key;  // non-empty: /v1/* needs "Authorization: Bearer <key>"
  size_t max_body_bytes = size_t{4} << 20;
  int http_threads = 0;      // 0: enough for every admitted and queued stream plus spares
  int read_timeout_s = 10;   // a client that sends nothing this long is dropped
  int write_timeout_s = 10;  // a client that reads nothing this long is dropped (its sequence cancelled)
  int keep_alive_timeout_s = 2;
};

// What the generation endpoints need of the loaded model.
struct ServedModel {
  std::string id;                    // the name in /v1/models and responses
  std::vector<std::string> aliases;  // other names a request may use for it
  int64_t created = 0;
  runtime::Engine* engine = nullptr;
  std::shared_ptr<const tokenizer::Tokenizer> tokenizer;
  std::optional<chat::ChatTemplate> chat_template;  // the model's, or a ChatML fallback
  std::string bos_text, eos_text;
};

class HttpServer {
 public:
  explicit HttpServer(ServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the listening socket (so that the port is known before serving).
  Status bind();
  int port() const { return port_; }
  // Serves until stop(); returns after in-flight requests have finished.
  void run();
  void start_background();  // run() on an owned thread
  // Waits up to `timeout` until no completion response is being generated or written (after the engine's shutdown,
  // so that every stream gets its ending before stop() closes the listener). True when none is left.
  bool drain(std::chrono::milliseconds timeout);
  // Stops accepting connections; with a background thread, joins it. Streams still being written are cut at their
  // next chunk (httplib stops chunked responses when the server stops): drain() first.
  void stop();

  void set_model(std::shared_ptr<const ServedModel> model);
  Metrics& metrics() { return metrics_; }
  const ServerOptions& options() const { return opts_; }

 private:
  void install_routes();
  std::shared_ptr<const ServedModel> model() const { return std::atomic_load(&model_); }

  static constexpr int kListenBacklog = 1024;

  ServerOptions opts_;
  std::unique_ptr<httplib::Server> svr_;
  int listen_fd_ = -1;  // the listening socket (httplib owns it)
  std::shared_ptr<const ServedModel> model_;
  Metrics metrics_;
  int port_ = 0;
  std::thread thread_;
};

// A ChatML template (Jinja) for models whose GGUF carries no tokenizer.chat_template.
const char* fallback_chat_template();

}  // namespace rf::server
