// `rocmforge serve`: the OpenAI-compatible HTTP server over the continuous-batching engine.
#pragma once

#include <string>

#include "server/http_server.h"

namespace rf::server {

struct ServeOptions {
  std::string model_path;  // empty: the built-in model
  std::string alias;       // model id in the API (default: the file name without .gguf)
  ServerOptions http;
  int parallel = 8;
  int ctx_size = 0;         // 0: the model's context length, at most 4096
  int kv_cache_tokens = 0;  // 0: ctx_size * parallel
  int batch_tokens = 256;
  int queue = 256;
  bool prefix_cache = true;
  // Greedy text independent of load: every row of a batch computed alike (BackendOptions::batch_invariant).
  bool batch_invariant = true;
  int threads = 0;
  std::string device = "auto";  // auto | cpu | gpu
  int n_gpu_layers = -1;        // layers on the GPU, the rest on the CPU; -1: all that fit
  double shutdown_grace_s = 10.0;
};

// Runs the server until SIGINT/SIGTERM; returns the process exit code (0 after a graceful shutdown).
int run_serve(const ServeOptions& options);

}  // namespace rf::server
