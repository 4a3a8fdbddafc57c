// Per-type block codecs of the IQ / ternary / MXFP4 family (internal to rf_quant; the public entry points are
// quant.h's dequantize / quantize, which validate arguments and dispatch here through formats.h).
// Every function handles nb consecutive blocks; src and dst hold exactly nb blocks (nb * block elements or bytes).
// Block layouts (byte offsets, all fields little-endian) are documented next to each implementation.
#pragma once

#include <bit>
#include <cstdint>

namespace rf::quant::iq {

static_assert(std::endian::native == std::endian::little, "block codecs read little-endian fields directly");

// Codebook formats, 256 elements per block (iq_codebook.cpp).
void dequantize_iq2_xxs(const uint8_t* src, float* dst, int64_t nb);
void dequantize_iq2_xs(const uint8_t* src, float* dst, int64_t nb);
void dequantize_iq2_s(const uint8_t* src, float* dst, int64_t nb);
void dequantize_iq3_xxs(const uint8_t* src, float* dst, int64_t nb);
void dequantize_iq3_s(const uint8_t* src, float* dst, int64_t nb);
void dequantize_iq1_s(const uint8_t* src, float* dst, int64_t nb);
void dequantize_iq1_m(const uint8_t* src, float* dst, int64_t nb);

// Non-linear 4-bit formats (iq_nonlinear.cpp): IQ4_NL has 32-element blocks, IQ4_XS 256.
void dequantize_iq4_nl(const uint8_t* src, float* dst, int64_t nb);
void dequantize_iq4_xs(const uint8_t* src, float* dst, int64_t nb);
void quantize_iq4_nl(const float* src, uint8_t* dst, int64_t nb);
void quantize_iq4_xs(const float* src, uint8_t* dst, int64_t nb);

// Ternary formats, 256 elements per block (ternary.cpp).
void dequantize_tq1_0(const uint8_t* src, float* dst, int64_t nb);
void dequantize_tq2_0(const uint8_t* src, float* dst, int64_t nb);
void quantize_tq1_0(const float* src, uint8_t* dst, int64_t nb);
void quantize_tq2_0(const float* src, uint8_t* dst, int64_t nb);

// MXFP4, 32 elements per block (mxfp4.cpp).
void dequantize_mxfp4(const uint8_t* src, float* dst, int64_t nb);
void quantize_mxfp4(const float* src, uint8_t* dst, int64_t nb);
// The E8M0 block scale halved (2^(e-128)), as MXFP4 pairs it with the doubled E2M1 values.
float e8m0_half_to_float(uint8_t e);

}  // namespace rf::quant::iq
