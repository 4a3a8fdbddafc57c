// Micro-benchmark of the dot kernels: one thread, a weight matrix that stays in the L2 cache (so the figure is the
// kernel's compute speed, not DRAM), every weight type with a fused dot, every kernel table this CPU can run.
#pragma once

#include <string>
#include <vector>

namespace rf::backend::cpu {

struct KernelSpeed {
  std::string isa;
  std::string type;
  double gbytes_per_s = 0;  // weight bytes consumed per second on one core
};

// Times each (table, type) for about `seconds` each.
std::vector<KernelSpeed> measure_dot_kernels(double seconds);
// A table: one line per type, one column per ISA, plus the speed-up of the best ISA over scalar.
std::string format_kernel_speeds(const std::vector<KernelSpeed>& speeds);

}  // namespace rf::backend::cpu
