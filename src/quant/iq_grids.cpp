// Format constants of the GGUF/ggml IQ formats (see iq_grids.h), expanded at compile time from the compact codes
// of iq_grid_values.inc (the one copy of the numbers, shared with the GPU decoders): each 16-bit code holds one
// level index per element, which selects the element's byte from the grid's level list.
#include "quant/iq_grids.h"

#include <cstddef>

namespace rf::quant::iq {
namespace {

template <size_t N>
constexpr bool strictly_increasing(const std::array<uint16_t, N>& codes) {
  for (size_t i = 1; i < N; ++i) {
    if (codes[i] <= codes[i - 1]) return false;
  }
  return true;
}

// 8 elements of 2 bits each -> 8 bytes.
template <size_t N>
constexpr std::array<uint64_t, N> expand_2bit(const std::array<uint16_t, N>& codes, std::array<uint8_t, 3> levels) {
  std::array<uint64_t, N> out{};
  for (size_t i = 0; i < N; ++i) {
    uint64_t entry = 0;
    for (int j = 0; j < 8; ++j) {
      const uint32_t level = (codes[i] >> (2 * j)) & 3u;
      const uint8_t b = level < 3 ? levels[level] : 0;  // level 3 never occurs (checked by tests)
      entry |= static_cast<uint64_t>(b) << (8 * j);
    }
    out[i] = entry;
  }
  return out;
}

// 4 elements of 4 bits each -> 4 bytes.
template <size_t N>
constexpr std::array<uint32_t, N> expand_4bit(const std::array<uint16_t, N>& codes, std::array<uint8_t, 8> levels) {
  std::array<uint32_t, N> out{};
  for (size_t i = 0; i < N; ++i) {
    uint32_t entry = 0;
    for (int j = 0; j < 4; ++j) {
      const uint32_t level = (codes[i] >> (4 * j)) & 0xfu;
      const uint8_t b = level < 8 ? levels[level] : 0;  // levels 8..15 never occur (checked by tests)
      entry |= static_cast<uint32_t>(b) << (8 * j);
    }
    out[i] = entry;
  }
  return out;
}

constexpr auto kIq2xxsCodes = std::to_array<uint16_t>({RF_IQ2XXS_CODES});
constexpr auto kIq2xsCodes = std::to_array<uint16_t>({RF_IQ2XS_CODES});
constexpr auto kIq2sCodes = std::to_array<uint16_t>({RF_IQ2S_CODES});
constexpr auto kIq3xxsCodes = std::to_array<uint16_t>({RF_IQ3XXS_CODES});
constexpr auto kIq3sCodes = std::to_array<uint16_t>({RF_IQ3S_CODES});
constexpr auto kIq1sCodes = std::to_array<uint16_t>({RF_IQ1S_CODES});

static_assert(strictly_increasing(kIq2xxsCodes));
static_assert(strictly_increasing(kIq2xsCodes));
static_assert(strictly_increasing(kIq2sCodes));
static_assert(strictly_increasing(kIq3xxsCodes));
static_assert(strictly_increasing(kIq3sCodes));
static_assert(strictly_increasing(kIq1sCodes));

constexpr std::array<uint8_t, 3> kIq2Levels = {RF_IQ2_LEVELS};
constexpr std::array<uint8_t, 8> kIq3xxsLevels = {RF_IQ3XXS_LEVELS};
constexpr std::array<uint8_t, 8> kIq3sLevels = {RF_IQ3S_LEVELS};
constexpr std::array<uint8_t, 3> kIq1Levels = {RF_IQ1_LEVELS};  // int8 -1, 0, +1

}  // namespace

// The entry counts are the declared ones: a list of the wrong length does not convert.
constinit const std::array<uint64_t, 256> kIq2xxsGrid = expand_2bit(kIq2xxsCodes, kIq2Levels);
constinit const std::array<uint64_t, 512> kIq2xsGrid = expand_2bit(kIq2xsCodes, kIq2Levels);
constinit const std::array<uint64_t, 1024> kIq2sGrid = expand_2bit(kIq2sCodes, kIq2Levels);
constinit const std::array<uint32_t, 256> kIq3xxsGrid = expand_4bit(kIq3xxsCodes, kIq3xxsLevels);
constinit const std::array<uint32_t, 512> kIq3sGrid = expand_4bit(kIq3sCodes, kIq3sLevels);
constinit const std::array<uint64_t, 2048> kIq1sGrid = expand_2bit(kIq1sCodes, kIq1Levels);

}  // namespace rf::quant::iq
