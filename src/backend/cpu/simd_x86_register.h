// The table entries an x86 SIMD translation unit provides. Included only by simd_avx2.cpp / simd_avx512.cpp, after
// simd_x86_quant.h, simd_x86_dots.h and simd_x86_rows.h, inside the body of the ISA's register function (t is the KernelTable&).
// Plain stores of function pointers: nothing from the standard library is instantiated with the ISA's flags.
#define RF_SET_WEIGHT(type, fn) t.weights[static_cast<uint32_t>(quant::Type::type)].dot = fn
#define RF_SET_ACT(type, fn) t.acts[static_cast<uint32_t>(quant::Type::type)].quantize = fn
RF_SET_ACT(Q8_0, quantize_q8_0);
RF_SET_ACT(Q8_1, quantize_q8_1);
RF_SET_ACT(Q8_K, quantize_q8_k);
RF_SET_ACT(F16, quantize_f16);
RF_SET_ACT(BF16, quantize_bf16);
t.acts[static_cast<uint32_t>(quant::Type::F16)].dequantize = dequantize_f16;
RF_SET_WEIGHT(F32, dot_f32_f32);
RF_SET_WEIGHT(F16, dot_f16_f16);
RF_SET_WEIGHT(BF16, dot_bf16_bf16);
RF_SET_WEIGHT(Q4_0, dot_q4_0_q8_0);
RF_SET_WEIGHT(Q4_1, dot_q4_1_q8_1);
RF_SET_WEIGHT(Q5_0, dot_q5_0_q8_0);
RF_SET_WEIGHT(Q5_1, dot_q5_1_q8_1);
RF_SET_WEIGHT(Q8_0, dot_q8_0_q8_0);
RF_SET_WEIGHT(IQ4_NL, dot_iq4_nl_q8_0);
RF_SET_WEIGHT(Q2_K, dot_q2_k_q8_k);
RF_SET_WEIGHT(Q3_K, dot_q3_k_q8_k);
RF_SET_WEIGHT(Q4_K, dot_q4_k_q8_k);
RF_SET_WEIGHT(Q5_K, dot_q5_k_q8_k);
RF_SET_WEIGHT(Q6_K, dot_q6_k_q8_k);
RF_SET_WEIGHT(IQ4_XS, dot_iq4_xs_q8_k);
#define RF_SET_ROWS(type, fn) t.weights[static_cast<uint32_t>(quant::Type::type)].dot_rows = fn
RF_SET_ROWS(Q4_0, dot_rows_q4_0);
RF_SET_ROWS(Q5_0, dot_rows_q5_0);
RF_SET_ROWS(Q8_0, dot_rows_q8_0);
RF_SET_ROWS(IQ4_NL, dot_rows_iq4_nl);
RF_SET_ROWS(Q4_K, dot_rows_q4_k);
RF_SET_ROWS(Q6_K, dot_rows_q6_k);
t.dot_f32 = dot_f32;
t.axpy_f32 = axpy_f32;
#undef RF_SET_WEIGHT
#undef RF_SET_ACT
#undef RF_SET_ROWS
