#include "server/serve_command.h"

#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <filesystem>

#include "core/default_model.h"
#include "model/model.h"
#include "runtime/device_select.h"
#include "server/response.h"

namespace rf::server {
namespace {

struct Loaded {
  std::unique_ptr<backend::Backend> backend;
  std::unique_ptr<model::Model> model;
  std::unique_ptr<runtime::Engine> engine;
  std::shared_ptr<ServedModel> served;
};

Expected<Loaded> load(const ServeOptions& o, const std::string& path) {
  Loaded l;
  auto kind = runtime::parse_device_kind(o.device);
  if (!kind) return kind.status();
  const backend::BackendOptions bo{*kind, o.threads, o.n_gpu_layers, o.batch_invariant, o.parallel};
  auto choice = runtime::select_backend(bo);
  if (!choice) return choice.status();
  if (!choice->note.empty()) std::fprintf(stderr, "rocmforge serve: %s\n", choice->note.c_str());
  std::fprintf(stderr, "rocmforge serve: backend %s\n", choice->backend->name().c_str());
  l.backend = std::move(choice->backend);
  model::OffloadRequest sizes;  // the engine's KV cache and batches (hybrid split, --n-gpu-layers)
  sizes.kv_tokens =
      o.kv_cache_tokens > 0 ? o.kv_cache_tokens : int64_t{o.ctx_size > 0 ? o.ctx_size : 4096} * o.parallel;
  sizes.batch_tokens = o.batch_tokens;
  sizes.output_rows = o.parallel;
  auto m = runtime::load_model(path, *l.backend, bo, sizes);
  if (!m) return m.status();
  l.model = std::move(*m);
  auto tok = tokenizer::Tokenizer::from_gguf(l.model->file());
  if (!tok) return Status::error("serve: model '" + path + "' has no usable tokenizer: " + tok.error_message());

  runtime::EngineOptions eo;
  eo.max_running = o.parallel;
  eo.ctx_size = o.ctx_size;
  if (eo.ctx_size <= 0) {
    const int train = l.model->hparams().n_ctx_train;
    eo.ctx_size = train > 0 ? std::min(train, 4096) : 4096;
  }
  eo.kv_slots = o.kv_cache_tokens;
  eo.step_tokens = o.batch_tokens;
  eo.max_waiting = o.queue;
  eo.prefix_cache = o.prefix_cache;
  for (int32_t id : (*tok)->vocab().eog) eo.stop_tokens.push_back(id);
  if ((*tok)->eos() >= 0) eo.stop_tokens.push_back((*tok)->eos());
  auto engine = runtime::Engine::create(*l.model, eo);
  if (!engine) return engine.status();
  l.engine = std::move(*engine);

  auto s = std::make_shared<ServedModel>();
  const std::string stem = std::filesystem::path(path).stem().string();
  s->id = o.alias.empty() ? stem : o.alias;
  s->aliases = {stem, std::filesystem::path(path).filename().string(), path};
  s->created = unix_time_now();
  s->engine = l.engine.get();
  s->tokenizer = *tok;
  const auto& t = **tok;
  if (t.bos() >= 0) s->bos_text = t.token_text(t.bos());
  if (t.eos() >= 0) s->eos_text = t.token_text(t.eos());
  std::string source = fallback_chat_template();
  if (auto tmpl = l.model->file().get<std::string>("tokenizer.chat_template"); tmpl.ok()) source = *tmpl;
  auto parsed = chat::ChatTemplate::parse(source);
  if (!parsed) {
    std::fprintf(stderr, "rocmforge serve: the model's chat template does not parse (%s); using ChatML\n",
                 parsed.error_message().c_str());
    parsed = chat::ChatTemplate::parse(fallback_chat_template());
  }
  if (!parsed) return parsed.status();
  s->chat_template = std::move(*parsed);
  l.served = std::move(s);
  return l;
}

}  // namespace

int run_serve(const ServeOptions& o) {
  // Handle SIGINT/SIGTERM on this thread only (sigwait below): every thread started from here inherits the mask.
  std::signal(SIGPIPE, SIG_IGN);
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  const std::string path = o.model_path.empty() ? rf::default_model_path() : o.model_path;
  ServerOptions http = o.http;
  if (http.http_threads <= 0) http.http_threads = std::max(16, 2 * o.parallel + 16);
  HttpServer server(http);
  if (Status s = server.bind(); !s.ok()) {
    std::fprintf(stderr, "rocmforge serve: %s\n", s.message().c_str());
    return 1;
  }
  std::fprintf(stderr, "rocmforge serve: listening on http://%s:%d (loading %s)\n", http.host.c_str(), server.port(),
               path.c_str());
  std::fflush(stderr);
  server.start_background();

  auto loaded = load(o, path);
  if (!loaded) {
    std::fprintf(stderr, "rocmforge serve: %s\n", loaded.error_message().c_str());
    server.stop();
    return 1;
  }
  server.set_model(loaded->served);
  const auto& eo = loaded->engine->options();
  std::fprintf(stderr,
               "rocmforge serve: model '%s' ready: %d parallel sequences, context %d, KV cache %d tokens in blocks "
               "of %d\n",
               loaded->served->id.c_str(), eo.max_running, eo.ctx_size, eo.kv_slots, eo.block_size);
  std::fflush(stderr);

  int sig = 0;
  sigwait(&sigs, &sig);
  std::fprintf(stderr, "rocmforge serve: %s: finishing running requests (up to %.0f s), then exiting\n",
               sig == SIGINT ? "SIGINT" : "SIGTERM", o.shutdown_grace_s);
  std::fflush(stderr);
  // Stop admitting (new requests get 503), let running sequences finish within the grace period, end the rest (their
  // clients get a well-formed ending: a finish chunk and an error event in streams, a 503 error otherwise), wait
  // until those endings are written (bounded by the write timeout of a client that does not read), then stop the
  // listener.
  loaded->engine->shutdown(std::chrono::milliseconds(static_cast<int64_t>(o.shutdown_grace_s * 1000)));
  if (!server.drain(std::chrono::seconds(http.write_timeout_s + 2))) {
    std::fprintf(stderr, "rocmforge serve: some responses were still being written; closing them\n");
  }
  server.stop();
  std::fprintf(stderr, "rocmforge serve: stopped\n");
  return 0;
}

}  // namespace rf::server
