#include "runtime/device_select.h"

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "backend/cpu/cpu_backend.h"
#if defined(ROCMFORGE_HAVE_GPU)
#include "backend/gpu/gpu_backend.h"
#endif

namespace rf::runtime {
namespace {

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos && colon + 2 <= line.size()) return line.substr(colon + 2);
    }
  }
  return "cpu";
}

// The GPU backend, or why there is none.
Expected<BackendChoice> create_gpu(const backend::BackendOptions& options) {
#if defined(ROCMFORGE_HAVE_GPU)
  auto created = gpu::GpuBackend::create(0);
  if (!created.ok()) return created.status();
  (*created)->set_batch_invariant(options.batch_invariant);
  (*created)->set_generated_by_matvec(options.max_sequences <= backend::kMatvecDecodeSequences);
  BackendChoice c;
  c.device_name = (*created)->device().name;
  c.backend = std::move(*created);
  c.is_gpu = true;
  return c;
#else
  (void)options;
  return Status::error("this build of rocmforge has no GPU backend (configure with -DROCMFORGE_GPU=cuda or hip)");
#endif
}

}  // namespace

Expected<backend::DeviceKind> parse_device_kind(const std::string& text) {
  if (text == "auto") return backend::DeviceKind::kAuto;
  if (text == "cpu") return backend::DeviceKind::kCpu;
  if (text == "gpu") return backend::DeviceKind::kGpu;
  return Status::error("--device must be auto, cpu or gpu, got '" + text + "'");
}

bool gpu_backend_compiled() {
#if defined(ROCMFORGE_HAVE_GPU)
  return true;
#else
  return false;
#endif
}

Expected<BackendChoice> select_backend(const backend::BackendOptions& options) {
  std::string why_cpu;
  if (options.device != backend::DeviceKind::kCpu) {
    Expected<BackendChoice> gpu = create_gpu(options);
    if (gpu.ok()) return std::move(*gpu);
    if (options.device == backend::DeviceKind::kGpu) {
      return Status::error("--device gpu: no usable GPU: " + gpu.error_message());
    }
    why_cpu = "device auto: using the CPU, no usable GPU: " + gpu.error_message();
  }
  BackendChoice c;
  c.backend = std::make_unique<backend::cpu::CpuBackend>(options.n_threads);
  c.device_name = cpu_model_name();
  c.note = why_cpu;
  return c;
}

Expected<std::unique_ptr<model::Model>> load_model(const std::string& path, backend::Backend& be,
                                                   const backend::BackendOptions& options,
                                                   const model::OffloadRequest& sizes) {
  auto file = gguf::File::open(path);
  if (!file) return file.status();
  return load_model(*file, be, options, sizes);
}

Expected<std::unique_ptr<model::Model>> load_model(std::shared_ptr<gguf::File> file, backend::Backend& be,
                                                   const backend::BackendOptions& options,
                                                   const model::OffloadRequest& sizes) {
#if defined(ROCMFORGE_HAVE_GPU)
  auto* gpu = dynamic_cast<gpu::GpuBackend*>(&be);
  if (gpu == nullptr) return model::Model::load(std::move(file), be);
  auto budget = model::offload_budget(*file, sizes);
  if (!budget) return budget.status();
  const int n_layer = static_cast<int>(budget->layer_weight_bytes.size());
  int n_gpu = options.n_gpu_layers;
  std::string why;
  if (n_gpu >= 0) {
    n_gpu = std::min(n_gpu, n_layer);
    why = "--n-gpu-layers " + std::to_string(options.n_gpu_layers);
  } else {
    auto free_bytes = gpu->free_memory();
    if (!free_bytes) return Status::error("--n-gpu-layers auto: " + free_bytes.error_message());
    budget->free_bytes = *free_bytes;
    budget->reserve_bytes = kGpuReserveBytes;
    const model::OffloadPlan plan = model::plan_offload(*budget);
    n_gpu = plan.n_gpu_layers;
    why = "auto: " + plan.reason;
  }
  model::Placement p;
  p.first = gpu;
  p.n_first = n_gpu;
  if (n_gpu < n_layer) {
    p.owned = std::make_unique<backend::cpu::CpuBackend>(options.n_threads);
    p.rest = p.owned.get();
  }
  // A device lost for good (a fault the driver will not reset in this process): the model moves to the CPU.
  p.fallback = [threads = options.n_threads]() -> std::unique_ptr<backend::Backend> {
    return std::make_unique<backend::cpu::CpuBackend>(threads);
  };
  // Weights only: what offload_bytes counts minus the KV cache and workspaces.
  size_t weights = 0;
  if (n_gpu > 0) weights += budget->input_bytes;
  for (int il = 0; il < n_gpu; ++il) weights += budget->layer_weight_bytes[static_cast<size_t>(il)];
  if (n_gpu == n_layer) weights += budget->output_bytes;
  gpu->plan_weight_bytes(weights);
  auto m = model::Model::load(std::move(file), std::move(p));
  gpu->plan_weight_bytes(0);
  if (!m) return m.status();
  std::fprintf(stderr, "rocmforge: %d of %d layers on the GPU, %d on the CPU (%s): %s\n", n_gpu, n_layer,
               n_layer - n_gpu, why.c_str(), (*m)->placement_summary().c_str());
  return m;
#else
  (void)options;
  (void)sizes;
  return model::Model::load(std::move(file), be);
#endif
}

Expected<double> measure_gpu_copy_bandwidth(backend::Backend& be) {
#if defined(ROCMFORGE_HAVE_GPU)
  if (auto* g = dynamic_cast<gpu::GpuBackend*>(&be)) return g->measure_copy_bandwidth();
#endif
  return Status::error("copy bandwidth: backend '" + be.name() + "' is not a GPU backend");
}

}  // namespace rf::runtime
