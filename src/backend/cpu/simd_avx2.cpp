// AVX2 + FMA + F16C kernels (compiled with -mavx2 -mfma -mf16c; run only where the CPU has them).
#define RF_SIMD_VNNI 0
#define RF_SIMD_512 0
#include "backend/cpu/simd_x86_common.h"
#include "backend/cpu/simd_x86_dots.h"
#include "backend/cpu/simd_x86_quant.h"
#include "backend/cpu/simd_x86_rows.h"
// (the headers above define everything in an anonymous namespace: internal to this file)
#include "backend/cpu/simd_kernels.h"

namespace rf::backend::cpu {

void register_avx2_kernels(KernelTable& t) {
#include "backend/cpu/simd_x86_register.h"
}

}  // namespace rf::backend::cpu
