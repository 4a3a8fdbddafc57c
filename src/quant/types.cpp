#include "quant/types.h"

#include <array>
#include <cctype>

#include "core/check.h"

namespace rf::quant {
namespace {

constexpr std::array kTraits = {
    TypeTraits{Type::F32, "F32", 1, 4},         TypeTraits{Type::F16, "F16", 1, 2},
    TypeTraits{Type::Q4_0, "Q4_0", 32, 18},     TypeTraits{Type::Q4_1, "Q4_1", 32, 20},
    TypeTraits{Type::Q5_0, "Q5_0", 32, 22},     TypeTraits{Type::Q5_1, "Q5_1", 32, 24},
    TypeTraits{Type::Q8_0, "Q8_0", 32, 34},     TypeTraits{Type::Q8_1, "Q8_1", 32, 36},
    TypeTraits{Type::Q2_K, "Q2_K", 256, 84},    TypeTraits{Type::Q3_K, "Q3_K", 256, 110},
    TypeTraits{Type::Q4_K, "Q4_K", 256, 144},   TypeTraits{Type::Q5_K, "Q5_K", 256, 176},
    TypeTraits{Type::Q6_K, "Q6_K", 256, 210},   TypeTraits{Type::Q8_K, "Q8_K", 256, 292},
    TypeTraits{Type::IQ2_XXS, "IQ2_XXS", 256, 66}, TypeTraits{Type::IQ2_XS, "IQ2_XS", 256, 74},
    TypeTraits{Type::IQ3_XXS, "IQ3_XXS", 256, 98}, TypeTraits{Type::IQ1_S, "IQ1_S", 256, 50},
    TypeTraits{Type::IQ4_NL, "IQ4_NL", 32, 18}, TypeTraits{Type::IQ3_S, "IQ3_S", 256, 110},
    TypeTraits{Type::IQ2_S, "IQ2_S", 256, 82},  TypeTraits{Type::IQ4_XS, "IQ4_XS", 256, 136},
    TypeTraits{Type::I8, "I8", 1, 1},           TypeTraits{Type::I16, "I16", 1, 2},
    TypeTraits{Type::I32, "I32", 1, 4},         TypeTraits{Type::I64, "I64", 1, 8},
    TypeTraits{Type::F64, "F64", 1, 8},         TypeTraits{Type::IQ1_M, "IQ1_M", 256, 56},
    TypeTraits{Type::BF16, "BF16", 1, 2},       TypeTraits{Type::TQ1_0, "TQ1_0", 256, 54},
    TypeTraits{Type::TQ2_0, "TQ2_0", 256, 66},  TypeTraits{Type::MXFP4, "MXFP4", 32, 17},
};

}  // namespace

std::optional<TypeTraits> type_traits(uint32_t raw_id) {
  for (const auto& t : kTraits) {
    if (static_cast<uint32_t>(t.type) == raw_id) return t;
  }
  return std::nullopt;
}

const TypeTraits& traits(Type t) {
  for (const auto& tr : kTraits) {
    if (tr.type == t) return tr;
  }
  RF_CHECK_MSG(false, "unknown tensor type id " + std::to_string(static_cast<uint32_t>(t)));
  __builtin_unreachable();
}

std::string_view type_name(Type t) { return traits(t).name; }

std::optional<Type> type_from_name(std::string_view name) {
  for (const auto& t : kTraits) {
    if (t.name.size() != name.size()) continue;
    bool same = true;
    for (size_t i = 0; i < name.size() && same; ++i) {
      same = std::toupper(static_cast<unsigned char>(name[i])) == t.name[i];
    }
    if (same) return t.type;
  }
  return std::nullopt;
}

std::optional<size_t> row_bytes(Type t, int64_t n) {
  const TypeTraits& tr = traits(t);
  if (n < 0 || n % tr.block_size != 0) return std::nullopt;
  return static_cast<size_t>(n / tr.block_size) * tr.block_bytes;
}

}  // namespace rf::quant
