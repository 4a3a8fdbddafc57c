#include "runtime/device_select.h"

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
  (void)options;
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

Expected<double> measure_gpu_copy_bandwidth(backend::Backend& be) {
#if defined(ROCMFORGE_HAVE_GPU)
  if (auto* g = dynamic_cast<gpu::GpuBackend*>(&be)) return g->measure_copy_bandwidth();
#endif
  return Status::error("copy bandwidth: backend '" + be.name() + "' is not a GPU backend");
}

}  // namespace rf::runtime
