// The ggml tensor types: ids as stored in GGUF, block sizes and block byte sizes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace rf::quant {

// Values are the GGUF/ggml on-disk ids; gaps are ids ggml retired.
enum class Type : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
};

struct TypeTraits {
  Type type;
  std::string_view name;  // as ggml prints it: "Q4_K", "IQ4_XS", "F16", ...
  int64_t block_size;     // elements per block
  size_t block_bytes;     // bytes per block
};

// Traits of a raw on-disk id; nullopt for ids this build does not know (a load error, never a crash).
std::optional<TypeTraits> type_traits(uint32_t raw_id);
const TypeTraits& traits(Type t);  // t must be a known type
std::string_view type_name(Type t);
std::optional<Type> type_from_name(std::string_view name);  // case-insensitive, e.g. "q4_k"

// Bytes of a row of n elements; nullopt when n is not a multiple of the block size.
std::optional<size_t> row_bytes(Type t, int64_t n);

}  // namespace rf::quant
