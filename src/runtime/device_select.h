// Device selection for every command that runs a model (generate, bench, serve): one call turns
// `--device auto|cpu|gpu` into a Backend.
//   cpu:  the CPU backend.
//   gpu:  the GPU backend, or an error saying why there is none (no GPU in this build, no driver, no device, a
//         failing first kernel); callers report it and exit 1.
//   auto: the GPU backend when one can be created, otherwise the CPU backend plus a one-line note saying why
//         (BackendChoice::note; log it once).
// Safe on machines without a GPU or a driver and in builds without a GPU backend: never aborts.
// load_model() then places a model on the chosen backend: on a GPU, the first --n-gpu-layers layers there and the
// rest on a CPU backend the model owns (hybrid execution), as many as fit in free GPU memory by default.
#pragma once

#include <memory>
#include <string>

#include "backend/backend.h"
#include "core/status.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "model/offload_plan.h"

namespace rf::runtime {

struct BackendChoice {
  std::unique_ptr<backend::Backend> backend;
  bool is_gpu = false;
  std::string device_name;  // the GPU's name, or the CPU's model name
  std::string note;         // auto only: why the CPU was chosen (empty when the GPU was)
};

// "auto" | "cpu" | "gpu" -> DeviceKind; an error naming the accepted values otherwise.
Expected<backend::DeviceKind> parse_device_kind(const std::string& text);

// True when this build has a GPU backend compiled in (it may still find no usable GPU at run time).
bool gpu_backend_compiled();

Expected<BackendChoice> select_backend(const backend::BackendOptions& options);

// GPU memory kept free by the automatic split (runtime, decode graphs, arena slack).
inline constexpr size_t kGpuReserveBytes = size_t{768} << 20;

// Loads the model on `be` (from select_backend). When `be` is a GPU backend, options.n_gpu_layers layers go on it
// and the rest on a new CPU backend with options.n_threads threads (owned by the model); -1 chooses from the
// GPU's free memory with model::plan_offload, where `sizes` says how large the caller's KV cache and batches will
// be. Logs one line saying how many layers went where and why. On a CPU backend options.n_gpu_layers is ignored.
// A model on a GPU gets a CPU fallback (model::Placement::fallback): if its device is lost and cannot be reset, it
// moves to a CPU backend with options.n_threads threads and goes on serving.
Expected<std::unique_ptr<model::Model>> load_model(std::shared_ptr<gguf::File> file, backend::Backend& be,
                                                   const backend::BackendOptions& options,
                                                   const model::OffloadRequest& sizes = {});
Expected<std::unique_ptr<model::Model>> load_model(const std::string& path, backend::Backend& be,
                                                   const backend::BackendOptions& options,
                                                   const model::OffloadRequest& sizes = {});

// The device's copy bandwidth in bytes/s (read + write of a large device-to-device copy) for a GPU backend from
// select_backend; an error for other backends.
Expected<double> measure_gpu_copy_bandwidth(backend::Backend& be);

}  // namespace rf::runtime
