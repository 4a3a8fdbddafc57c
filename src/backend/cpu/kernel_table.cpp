// The scalar kernel table and the start-up selection of the best table for this CPU.
#include "backend/cpu/dot_kernels.h"
#include "backend/cpu/simd_kernels.h"

namespace rf::backend::cpu {
namespace {

using quant::Type;

void set_weight(KernelTable& t, Type w, Type act, DotFn dot) {
  t.weights[static_cast<uint32_t>(w)] = {act, dot, nullptr};
}
void set_act(KernelTable& t, Type act, ActQuantizeFn q, ActDequantizeFn dq) {
  t.acts[static_cast<uint32_t>(act)] = {q, dq};
}

KernelTable build_scalar() {
  KernelTable t;
  t.isa = "scalar";
  t.dot_f32 = scalar::dot_f32;
  t.axpy_f32 = scalar::axpy_f32;
  set_act(t, Type::F32, scalar::quantize_f32, scalar::dequantize_f32);
  set_act(t, Type::F16, scalar::quantize_f16, scalar::dequantize_f16);
  set_act(t, Type::BF16, scalar::quantize_bf16, scalar::dequantize_bf16);
  set_act(t, Type::Q8_0, scalar::quantize_q8_0, scalar::dequantize_q8_0);
  set_act(t, Type::Q8_1, scalar::quantize_q8_1, scalar::dequantize_q8_1);
  set_act(t, Type::Q8_K, scalar::quantize_q8_k, scalar::dequantize_q8_k);

  set_weight(t, Type::F32, Type::F32, scalar::dot_f32_f32);
  set_weight(t, Type::F16, Type::F16, scalar::dot_f16_f16);
  set_weight(t, Type::BF16, Type::BF16, scalar::dot_bf16_bf16);
  set_weight(t, Type::Q4_0, Type::Q8_0, scalar::dot_q4_0_q8_0);
  set_weight(t, Type::Q4_1, Type::Q8_1, scalar::dot_q4_1_q8_1);
  set_weight(t, Type::Q5_0, Type::Q8_0, scalar::dot_q5_0_q8_0);
  set_weight(t, Type::Q5_1, Type::Q8_1, scalar::dot_q5_1_q8_1);
  set_weight(t, Type::Q8_0, Type::Q8_0, scalar::dot_q8_0_q8_0);
  set_weight(t, Type::IQ4_NL, Type::Q8_0, scalar::dot_iq4_nl_q8_0);
  set_weight(t, Type::Q2_K, Type::Q8_K, scalar::dot_q2_k_q8_k);
  set_weight(t, Type::Q3_K, Type::Q8_K, scalar::dot_q3_k_q8_k);
  set_weight(t, Type::Q4_K, Type::Q8_K, scalar::dot_q4_k_q8_k);
  set_weight(t, Type::Q5_K, Type::Q8_K, scalar::dot_q5_k_q8_k);
  set_weight(t, Type::Q6_K, Type::Q8_K, scalar::dot_q6_k_q8_k);
  set_weight(t, Type::IQ4_XS, Type::Q8_K, scalar::dot_iq4_xs_q8_k);
  // Formats without a fused dot yet: dequantize the weight row, float dot with activations rounded as llama.cpp
  // pairs them (8-bit K-style for the IQ/ternary codebooks, Q8_0 for MXFP4).
  for (Type w : {Type::IQ2_XXS, Type::IQ2_XS, Type::IQ2_S, Type::IQ3_XXS, Type::IQ3_S, Type::IQ1_S, Type::IQ1_M,
                 Type::TQ1_0, Type::TQ2_0, Type::Q8_K}) {
    set_weight(t, w, Type::Q8_K, nullptr);
  }
  set_weight(t, Type::MXFP4, Type::Q8_0, nullptr);
  set_weight(t, Type::Q8_1, Type::Q8_1, nullptr);
  return t;
}

}  // namespace

const KernelTable& scalar_kernels() {
  static const KernelTable table = build_scalar();
  return table;
}

const KernelTable& kernels() {
  // SIMD tables (AVX2, AVX-512/VNNI, NEON) are chosen here once from detected CPU features (kernels_select.cpp).
  static const KernelTable& table = select_best_kernels();
  return table;
}

quant::Type act_type_for(quant::Type weight) { return scalar_kernels().for_weight(weight).act_type; }

bool matmul_supported(quant::Type weight) {
  const auto id = static_cast<uint32_t>(weight);
  if (id >= 64) return false;
  const auto& k = scalar_kernels().weights[id];
  return k.dot != nullptr || (k.act_type != quant::Type::F32 || weight == quant::Type::F32);
}

}  // namespace rf::backend::cpu
