// Structural checks of the transcribed IQ codebooks plus entries re-read from the ggml reference tables.
#include "quant/iq_grids.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <set>
#include <vector>

namespace rf::quant::iq {
namespace {

// Level index of every byte of an entry (or -1 when a byte is not one of the levels).
template <typename Entry, size_t L>
std::vector<int> levels_of(Entry e, int bytes, const std::array<uint8_t, L>& levels) {
  std::vector<int> out;
  for (int j = 0; j < bytes; ++j) {
    const auto b = static_cast<uint8_t>(e >> (8 * j));
    const auto it = std::find(levels.begin(), levels.end(), b);
    out.push_back(it == levels.end() ? -1 : static_cast<int>(it - levels.begin()));
  }
  return out;
}

// Every byte is a level, and the entries read as base-|levels| numbers (element 0 least significant) are
// strictly increasing: the tables are sorted that way, so a mistyped entry almost surely breaks the order.
template <typename Entry, size_t N, size_t L>
void expect_sorted_over_levels(const std::array<Entry, N>& grid, int bytes, const std::array<uint8_t, L>& levels) {
  int64_t prev = -1;
  for (size_t i = 0; i < N; ++i) {
    const std::vector<int> lv = levels_of(grid[i], bytes, levels);
    int64_t key = 0;
    for (int j = bytes - 1; j >= 0; --j) {
      ASSERT_GE(lv[j], 0) << "entry " << i << " byte " << j << " is not a grid level";
      key = key * static_cast<int64_t>(L) + lv[j];
    }
    ASSERT_GT(key, prev) << "entry " << i << " breaks the sorted order";
    prev = key;
  }
}

template <typename Entry, size_t N>
size_t distinct(const std::array<Entry, N>& grid) {
  return std::set<Entry>(grid.begin(), grid.end()).size();
}

constexpr std::array<uint8_t, 3> kIq2Levels = {0x08, 0x19, 0x2b};
constexpr std::array<uint8_t, 8> kIq3xxsLevels = {0x04, 0x0c, 0x14, 0x1c, 0x24, 0x2c, 0x34, 0x3e};
constexpr std::array<uint8_t, 8> kIq3sLevels = {0x01, 0x03, 0x05, 0x07, 0x09, 0x0b, 0x0d, 0x0f};
constexpr std::array<uint8_t, 3> kIq1Levels = {0xff, 0x00, 0x01};

TEST(IqGrids, EntryCountsMatchTheFormats) {
  EXPECT_EQ(kIq2xxsGrid.size(), 256u);
  EXPECT_EQ(kIq2xsGrid.size(), 512u);
  EXPECT_EQ(kIq2sGrid.size(), 1024u);
  EXPECT_EQ(kIq3xxsGrid.size(), 256u);
  EXPECT_EQ(kIq3sGrid.size(), 512u);
  EXPECT_EQ(kIq1sGrid.size(), 2048u);
}

TEST(IqGrids, Iq2GridBytesAreLevelsAndEntriesSortedAndUnique) {
  expect_sorted_over_levels(kIq2xxsGrid, 8, kIq2Levels);
  expect_sorted_over_levels(kIq2xsGrid, 8, kIq2Levels);
  expect_sorted_over_levels(kIq2sGrid, 8, kIq2Levels);
  EXPECT_EQ(distinct(kIq2xxsGrid), 256u);
  EXPECT_EQ(distinct(kIq2xsGrid), 512u);
  EXPECT_EQ(distinct(kIq2sGrid), 1024u);
}

TEST(IqGrids, Iq3GridBytesAreLevelsAndEntriesSortedAndUnique) {
  expect_sorted_over_levels(kIq3xxsGrid, 4, kIq3xxsLevels);
  expect_sorted_over_levels(kIq3sGrid, 4, kIq3sLevels);
  EXPECT_EQ(distinct(kIq3xxsGrid), 256u);
  EXPECT_EQ(distinct(kIq3sGrid), 512u);
}

TEST(IqGrids, Iq1GridValuesAreTernaryAndEntriesSortedAndUnique) {
  expect_sorted_over_levels(kIq1sGrid, 8, kIq1Levels);
  EXPECT_EQ(distinct(kIq1sGrid), 2048u);
}

// Entries re-read from ggml's ggml-common.h (first, middle and last rows of each table).
TEST(IqGrids, EntriesMatchTheGgmlReferenceTables) {
  const std::vector<std::pair<size_t, uint64_t>> iq2xxs = {
      {0, 0x0808080808080808},   {1, 0x080808080808082b},   {2, 0x0808080808081919},   {3, 0x0808080808082b08},
      {104, 0x08192b1908080808}, {105, 0x08192b1908081919}, {106, 0x08192b192b2b0808}, {107, 0x08192b2b19190819},
      {252, 0x2b2b082b08080808}, {253, 0x2b2b190808192b08}, {254, 0x2b2b2b0819190808}, {255, 0x2b2b2b1908081908}};
  for (const auto& [i, v] : iq2xxs) EXPECT_EQ(kIq2xxsGrid[i], v) << "iq2xxs_grid[" << i << "]";

  const std::vector<std::pair<size_t, uint64_t>> iq2xs = {
      {11, 0x08080808082b1919},  {99, 0x0808192b08080819},  {102, 0x0808192b082b192b}, {244, 0x082b2b0819191919},
      {372, 0x19192b1908192b2b}, {375, 0x19192b2b2b081919}, {511, 0x2b2b2b2b2b2b2b2b}};
  for (const auto& [i, v] : iq2xs) EXPECT_EQ(kIq2xsGrid[i], v) << "iq2xs_grid[" << i << "]";

  const std::vector<std::pair<size_t, uint64_t>> iq2s = {
      {0, 0x0808080808080808},    {968, 0x2b19192b08080808},  {971, 0x2b192b0808080819}, {996, 0x2b2b082b082b082b},
      {1020, 0x2b2b2b2b082b082b}, {1022, 0x2b2b2b2b2b082b08}, {1023, 0x2b2b2b2b2b2b2b2b}};
  for (const auto& [i, v] : iq2s) EXPECT_EQ(kIq2sGrid[i], v) << "iq2s_grid[" << i << "]";

  const std::vector<std::pair<size_t, uint32_t>> iq3xxs = {{0, 0x04040404},   {5, 0x04040c3e},  {64, 0x0c041c04},
                                                           {71, 0x0c0c0c0c},  {96, 0x0c3e2404}, {168, 0x1c2c2c2c},
                                                           {248, 0x3e1c1c1c}, {255, 0x3e341c04}};
  for (const auto& [i, v] : iq3xxs) EXPECT_EQ(kIq3xxsGrid[i], v) << "iq3xxs_grid[" << i << "]";

  const std::vector<std::pair<size_t, uint32_t>> iq3s = {{0, 0x01010101},   {3, 0x0101010b},   {184, 0x030d050f},
                                                         {328, 0x07090703}, {335, 0x070b050b}, {504, 0x0f090307},
                                                         {511, 0x0f0f0101}};
  for (const auto& [i, v] : iq3s) EXPECT_EQ(kIq3sGrid[i], v) << "iq3s_grid[" << i << "]";

  const std::vector<std::pair<size_t, uint64_t>> iq1s = {
      {0, 0xffffffffffffffff},  {1, 0xffffffffffffff01},  {2, 0xffffffffffff0000},  {3, 0xffffffffffff01ff},
      {48, 0xffffff01ffffffff}, {49, 0xffffff01ffffff01}, {50, 0xffffff01ffff01ff}, {51, 0xffffff01ffff0101}};
  for (const auto& [i, v] : iq1s) EXPECT_EQ(kIq1sGrid[i], v) << "iq1s_grid[" << i << "]";
}

// ggml also ships iq1s_grid in a GPU form: one nibble per value (value + 1), byte k holding elements k and k + 4.
// Rows of that independent transcription must appear at the same positions.
TEST(IqGrids, Iq1GridMatchesTheGgmlGpuFormTable) {
  const auto gpu_form = [](uint64_t entry) {
    uint32_t out = 0;
    for (int k = 0; k < 4; ++k) {
      const uint32_t lo = static_cast<uint32_t>(static_cast<int8_t>(entry >> (8 * k)) + 1);
      const uint32_t hi = static_cast<uint32_t>(static_cast<int8_t>(entry >> (8 * (k + 4))) + 1);
      out |= (lo | (hi << 4)) << (8 * k);
    }
    return out;
  };
  const std::vector<std::pair<size_t, uint32_t>> rows = {
      {32, 0x00020111},  {33, 0x01000011},  {39, 0x01020011},   {134, 0x00002000},  {141, 0x00022200},
      {464, 0x02220202}, {840, 0x12012112}, {1304, 0x10201212}, {1311, 0x11201112}, {2047, 0x22222222}};
  for (const auto& [i, v] : rows) EXPECT_EQ(gpu_form(kIq1sGrid[i]), v) << "iq1s_grid_gpu[" << i << "]";
}

TEST(IqGrids, SignByteRestoresEvenParity) {
  for (uint32_t i = 0; i < 128; ++i) {
    const uint8_t s = sign_byte(i);
    EXPECT_EQ(s & 0x7fu, i);
    EXPECT_EQ(std::popcount(static_cast<unsigned>(s)) % 2, 0) << i;
  }
  // Entries of ggml's ksigns_iq2xs table.
  EXPECT_EQ(sign_byte(1), 129);
  EXPECT_EQ(sign_byte(3), 3);
  EXPECT_EQ(sign_byte(16), 144);
  EXPECT_EQ(sign_byte(127), 255);
}

TEST(IqGrids, ValueTablesMatchTheFormats) {
  const std::array<int, 16> iq4nl = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
  const std::array<float, 16> e2m1 = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(kIq4nlValues[i], iq4nl[i]);
    EXPECT_EQ(kMxfp4Values[i], 2.0f * e2m1[i]) << "MXFP4 values are the E2M1 values doubled";
  }
  EXPECT_EQ(kIq1Delta, 0.125f);
}

}  // namespace
}  // namespace rf::quant::iq
