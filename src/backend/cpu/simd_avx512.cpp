// AVX-512 (F/BW/VL/DQ) + VNNI kernels: the 8-bit dots use vpdpbusd, the float dots 512-bit vectors. Compiled with
// its own -mavx512* flags; run only where the CPU has all of them.
#define RF_SIMD_VNNI 1
#define RF_SIMD_512 1
#include "backend/cpu/simd_x86_common.h"
#include "backend/cpu/simd_x86_dots.h"
#include "backend/cpu/simd_x86_quant.h"
#include "backend/cpu/simd_x86_rows.h"
// (the headers above define everything in an anonymous namespace: internal to this file)
#include "backend/cpu/simd_kernels.h"

namespace rf::backend::cpu {

void register_avx512_kernels(KernelTable& t) {
#include "backend/cpu/simd_x86_register.h"
}

}  // namespace rf::backend::cpu
