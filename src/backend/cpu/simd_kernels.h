// SIMD kernel tables for the CPU backend (AVX2, AVX-512 + VNNI, NEON) and the start-up choice among them.
// Each ISA lives in its own translation unit compiled with its own flags (simd_avx2.cpp, simd_avx512.cpp,
// simd_neon.cpp); the binary runs on any CPU of its architecture and picks a table at run time from the CPU's
// features (__builtin_cpu_supports on x86, always NEON on aarch64).
#pragma once

#include <string_view>
#include <vector>

#include "backend/cpu/dot_kernels.h"

namespace rf::backend::cpu {

// Every kernel table this CPU can run, scalar first, best last (tests compare each one with the scalar table).
std::vector<const KernelTable*> available_kernel_tables();

// The best table for this CPU. ROCMFORGE_ISA=scalar|avx2|avx512|neon caps the choice (for comparisons); an ISA the
// CPU lacks or an unknown name falls back to the best available one.
const KernelTable& select_best_kernels();

// The table of the named ISA ("scalar", "avx2", "avx512", "neon"), or nullptr when this CPU cannot run it.
const KernelTable* find_kernel_table(std::string_view isa);

// Per-ISA registration: overwrite the entries of `t` (a copy of the scalar table) that the ISA accelerates.
// Called only when the CPU supports the ISA.
void register_avx2_kernels(KernelTable& t);
void register_avx512_kernels(KernelTable& t);
// Extra AVX-512 kernels for CPUs that also have VBMI and GFNI, applied on top of register_avx512_kernels.
void register_avx512_vbmi_kernels(KernelTable& t);
void register_neon_kernels(KernelTable& t);

}  // namespace rf::backend::cpu
