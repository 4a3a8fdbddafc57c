// Codebooks of the ggml importance-matrix ("IQ") formats, FP4 and IQ4 value tables (numbers: iq_grid_values.inc).
// These are format constants of the GGUF/ggml tensor formats: a file quantized with them can only be read with
// exactly the same tables. Each grid entry packs 8 (or 4) element magnitudes, one byte per element, element j in
// byte j (bits 8j..8j+7), the same packing the ggml reference uses, so entries compare 1:1 with its tables.
#pragma once

#include <array>
#include <cstdint>

#include "quant/iq_grid_values.inc"

namespace rf::quant::iq {

// IQ2_XXS / IQ2_XS / IQ2_S: 8 magnitudes each from {0x08, 0x19, 0x2b}.
extern const std::array<uint64_t, 256> kIq2xxsGrid;
extern const std::array<uint64_t, 512> kIq2xsGrid;
extern const std::array<uint64_t, 1024> kIq2sGrid;
// IQ3_XXS: 4 magnitudes each from {0x04, 0x0c, 0x14, 0x1c, 0x24, 0x2c, 0x34, 0x3e}.
extern const std::array<uint32_t, 256> kIq3xxsGrid;
// IQ3_S: 4 magnitudes each from {1, 3, 5, ..., 15}.
extern const std::array<uint32_t, 512> kIq3sGrid;
// IQ1_S / IQ1_M: 8 signed values each from {-1, 0, +1}, stored as int8 bytes (0xff is -1).
extern const std::array<uint64_t, 2048> kIq1sGrid;

// IQ1_S / IQ1_M shift of every grid value (+-delta by a per-group bit).
inline constexpr float kIq1Delta = 0.125f;

// IQ4_NL / IQ4_XS: the 16 non-linear levels.
inline constexpr std::array<int8_t, 16> kIq4nlValues = {RF_IQ4NL_VALUES};

// MXFP4: the E2M1 values doubled (so that they are integers); the block scale is halved to compensate.
inline constexpr std::array<int8_t, 16> kMxfp4Values = {RF_MXFP4_VALUES};

// Sign byte of an IQ2/IQ3 7-bit sign index: bits 0..6 as given, bit 7 chosen so the byte has an even number of
// set bits (the format stores only 7 of 8 signs; the 8th restores even parity).
constexpr uint8_t sign_byte(uint32_t index7) {
  const uint32_t v = index7 & 0x7fu;
  uint32_t parity = 0;
  for (uint32_t b = v; b != 0; b >>= 1) parity ^= b & 1u;
  return static_cast<uint8_t>(v | (parity << 7));
}

// Magnitude byte j of a packed grid entry.
constexpr uint8_t grid_byte(uint64_t entry, int j) { return static_cast<uint8_t>(entry >> (8 * j)); }

}  // namespace rf::quant::iq
