#include "server/http_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>

#include "server/api_error.h"
#include "server/completion_handler.h"
#include "server/response.h"

namespace rf::server {
namespace {

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// Comparison whose time does not depend on where the strings differ.
bool same_secret(const std::string& a, const std::string& b) {
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned>(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

std::string endpoint_label(const std::string& path) {
  static const char* kKnown[] = {
      "/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/ready", "/metrics"};
  for (const char* k : kKnown) {
    if (path == k) return k;
  }
  if (starts_with(path, "/v1/models/")) return "/v1/models/{id}";
  return "other";
}

nlohmann::ordered_json model_json(const ServedModel& m) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  j["id"] = m.id;
  j["object"] = "model";
  j["created"] = m.created;
  j["owned_by"] = "rocmforge";
  return j;
}

}  // namespace

const char* fallback_chat_template() {
  return "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
         "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
}

HttpServer::HttpServer(ServerOptions options) : opts_(std::move(options)), svr_(std::make_unique<httplib::Server>()) {
  // httplib 0.11's default listening-socket options set SO_REUSEPORT, which lets a second server bind the same port
  // and silently take half of its connections; plain SO_REUSEADDR (restart without waiting for TIME_WAIT) instead.
  // The socket is remembered to widen its accept backlog after bind() (see there).
  svr_->set_socket_options([this](int fd) {
    const int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    listen_fd_ = fd;
  });
  install_routes();
}

HttpServer::~HttpServer() { stop(); }

void HttpServer::set_model(std::shared_ptr<const ServedModel> model) { std::atomic_store(&model_, std::move(model)); }

Status HttpServer::bind() {
  if (opts_.port == 0) {
    port_ = svr_->bind_to_any_port(opts_.host);
    if (port_ <= 0) return Status::error("serve: cannot bind to any port on '" + opts_.host + "'");
  } else {
    if (!svr_->bind_to_port(opts_.host, opts_.port)) {
      return Status::error("serve: cannot listen on " + opts_.host + ":" + std::to_string(opts_.port) +
                           " (address in use or not available)");
    }
    port_ = opts_.port;
  }
  // httplib listens with a backlog of 5: a burst of clients connecting at once (32 streams starting together)
  // overflows it, and the kernel drops their handshakes, which costs them a one-second retransmit or the
  // connection. listen() on a listening socket only resizes its queue (capped by net.core.somaxconn).
  if (listen_fd_ >= 0 && ::listen(listen_fd_, kListenBacklog) != 0) {
    return Status::error("serve: cannot set the listen backlog on " + opts_.host + ":" + std::to_string(port_));
  }
  return ok_status();
}

void HttpServer::run() { svr_->listen_after_bind(); }

void HttpServer::start_background() {
  thread_ = std::thread([this] { run(); });
  while (!svr_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

bool HttpServer::drain(std::chrono::milliseconds timeout) { return metrics_.wait_generations_done(timeout); }

void HttpServer::stop() {
  svr_->stop();
  if (thread_.joinable()) thread_.join();
}

void HttpServer::install_routes() {
  httplib::Server& s = *svr_;
  const int threads = opts_.http_threads > 0 ? opts_.http_threads : 64;
  s.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  s.set_payload_max_length(opts_.max_body_bytes);
  s.set_read_timeout(opts_.read_timeout_s, 0);
  s.set_write_timeout(opts_.write_timeout_s, 0);
  s.set_keep_alive_timeout(opts_.keep_alive_timeout_s);

  s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (opts_.api_key.empty() || !starts_with(req.path, "/v1/")) return httplib::Server::HandlerResponse::Unhandled;
    const std::string auth = req.get_header_value("Authorization");
    if (!starts_with(auth, "Bearer ") || !same_secret(auth.substr(7), opts_.api_key)) {
      set_error(res,
                unauthorized(auth.empty() ? "missing API key: send 'Authorization: Bearer <key>'" : "invalid API key"));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Bodies for errors httplib raises itself (unknown route, oversized body, bad HTTP), in OpenAI's format.
  s.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    ApiError e;
    if (res.status == 404) {
      e = not_found("unknown route: " + req.method + " " + req.path, "unknown_url");
    } else if (res.status == 413) {
      e = payload_too_large(opts_.max_body_bytes);
    } else if (res.status == 400) {
      e = invalid_request("malformed HTTP request");
    } else {
      e = ApiError{res.status, "HTTP error " + std::to_string(res.status), "invalid_request_error", {}, {}};
    }
    res.set_content(e.body(), "application/json");
  });
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unexpected error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& ex) {
      what = ex.what();
    } catch (...) {
    }
    set_error(res, internal_error("internal error: " + what));
  });
  s.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    metrics_.count_request(endpoint_label(req.path), res.status);
  });

  s.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  s.Get("/ready", [this](const httplib::Request&, httplib::Response& res) {
    if (auto m = model(); m && m->engine && m->engine->stats().device_unusable) {
      // Alive but unable to run the model: an orchestrator should route elsewhere and restart this process.
      res.status = 503;
      res.set_content(R"({"status":"device lost"})", "application/json");
    } else if (m && m->engine && m->engine->stats().device_fallback) {
      // Serving, slower: the GPU was lost for good and the model runs on the CPU.
      res.set_content(R"({"status":"ready","degraded":"device lost, running on the CPU"})", "application/json");
    } else if (m) {
      res.set_content(R"({"status":"ready"})", "application/json");
    } else {
      res.status = 503;
      res.set_content(R"({"status":"loading"})", "application/json");
    }
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    EngineGauges g;
    if (auto m = model(); m && m->engine) {
      const auto st = m->engine->stats();
      g.queue_length = st.waiting;
      g.running_sequences = st.running;
      g.kv_blocks_total = st.kv_blocks_total;
      g.kv_blocks_used = st.kv_blocks_used;
      g.kv_blocks_cached = st.kv_blocks_cached;
      g.preemptions = st.preemptions;
      g.steps = st.steps;
      g.schedule_seconds = st.schedule_seconds;
      g.forward_seconds = st.forward_seconds;
      g.after_seconds = st.after_seconds;
      g.device_recoveries = st.device_recoveries;
      g.device_unusable = st.device_unusable;
      g.device_fallback = st.device_fallback;
    }
    res.set_content(metrics_.render(g), "text/plain; version=0.0.4; charset=utf-8");
  });
  s.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    j["object"] = "list";
    j["data"] = nlohmann::ordered_json::array();
    if (auto m = model()) j["data"].push_back(model_json(*m));
    res.set_content(dump_json(j), "application/json");
  });
  s.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    auto m = model();
    if (m && (id == m->id || std::find(m->aliases.begin(), m->aliases.end(), id) != m->aliases.end())) {
      res.set_content(dump_json(model_json(*m)), "application/json");
    } else {
      set_error(res, not_found("the model '" + id + "' does not exist", "model_not_found"));
    }
  });
  s.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    handle_generation(Endpoint::kChat, model(), metrics_, req, res);
  });
  s.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    handle_generation(Endpoint::kCompletion, model(), metrics_, req, res);
  });
}

}  // namespace rf::server
