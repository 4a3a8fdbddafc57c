// Start-up choice of the kernel table: scalar, then every SIMD table this CPU supports, best last.
#include <cstdlib>
#include <memory>
#include <string>

#include "backend/cpu/simd_kernels.h"

namespace rf::backend::cpu {
namespace {

struct Tables {
  std::vector<std::unique_ptr<KernelTable>> owned;
  std::vector<const KernelTable*> all;  // scalar first
};

std::unique_ptr<KernelTable> derive(const std::string& isa, void (*reg)(KernelTable&)) {
  auto t = std::make_unique<KernelTable>(scalar_kernels());
  t->isa = isa;
  reg(*t);
  return t;
}

Tables build_tables() {
  Tables t;
  t.all.push_back(&scalar_kernels());
#if defined(__x86_64__) && defined(RF_HAVE_X86_SIMD)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("f16c");  // (gcc/clang know f16c as a feature name)
  if (avx2) t.owned.push_back(derive("avx2", register_avx2_kernels));
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512vnni");
  if (avx512) t.owned.push_back(derive("avx512", register_avx512_kernels));
  if (avx512 && __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("gfni")) {
    register_avx512_vbmi_kernels(*t.owned.back());
  }
#elif defined(__aarch64__) && defined(RF_HAVE_NEON_SIMD)
  t.owned.push_back(derive("neon", register_neon_kernels));
#endif
  for (const auto& o : t.owned) t.all.push_back(o.get());
  return t;
}

const Tables& tables() {
  static const Tables* t = new Tables(build_tables());  // never destroyed: kernels() may be used at exit
  return *t;
}

}  // namespace

std::vector<const KernelTable*> available_kernel_tables() { return tables().all; }

const KernelTable* find_kernel_table(std::string_view isa) {
  for (const KernelTable* t : tables().all) {
    if (t->isa == isa) return t;
  }
  return nullptr;
}

const KernelTable& select_best_kernels() {
  const auto& all = tables().all;
  if (const char* cap = std::getenv("ROCMFORGE_ISA")) {
    if (const KernelTable* t = find_kernel_table(cap)) return *t;
  }
  return *all.back();
}

}  // namespace rf::backend::cpu
