// Public conversion API: argument validation, then dispatch by type family (see formats.h).
#include "quant/quant.h"

#include <string>

#include "quant/formats.h"

namespace rf::quant {
namespace {

enum class Family { kPlain, kLegacy, kKQuant, kIq };

Family family_of(Type t) {
  switch (t) {
    case Type::F32:
    case Type::F16:
    case Type::BF16:
    case Type::F64:
    case Type::I8:
    case Type::I16:
    case Type::I32:
    case Type::I64:
      return Family::kPlain;
    case Type::Q4_0:
    case Type::Q4_1:
    case Type::Q5_0:
    case Type::Q5_1:
    case Type::Q8_0:
    case Type::Q8_1:
      return Family::kLegacy;
    case Type::Q2_K:
    case Type::Q3_K:
    case Type::Q4_K:
    case Type::Q5_K:
    case Type::Q6_K:
    case Type::Q8_K:
      return Family::kKQuant;
    case Type::IQ2_XXS:
    case Type::IQ2_XS:
    case Type::IQ3_XXS:
    case Type::IQ1_S:
    case Type::IQ4_NL:
    case Type::IQ3_S:
    case Type::IQ2_S:
    case Type::IQ4_XS:
    case Type::IQ1_M:
    case Type::TQ1_0:
    case Type::TQ2_0:
    case Type::MXFP4:
      return Family::kIq;
  }
  return Family::kIq;  // unreachable for valid enum values; the iq family rejects unknown ids
}

// Checks what every family relies on: a known type, n a non-negative multiple of the block size, pointers set.
Status check_args(const char* op, uint32_t raw_type, const void* src, const void* dst, int64_t n) {
  const auto tr = type_traits(raw_type);
  if (!tr) return Status::error(std::string("quant: ") + op + ": unknown tensor type id " + std::to_string(raw_type));
  if (n < 0 || n % tr->block_size != 0) {
    return Status::error(std::string("quant: ") + op + " " + std::string(tr->name) + ": element count " +
                         std::to_string(n) + " is not a non-negative multiple of the block size " +
                         std::to_string(tr->block_size));
  }
  if (n > 0 && (src == nullptr || dst == nullptr)) {
    return Status::error(std::string("quant: ") + op + " " + std::string(tr->name) + ": null buffer for " +
                         std::to_string(n) + " elements");
  }
  return ok_status();
}

}  // namespace

Status dequantize(Type t, const void* src, float* dst, int64_t n) {
  RF_RETURN_IF_ERROR(check_args("dequantize", static_cast<uint32_t>(t), src, dst, n));
  if (n == 0) return ok_status();
  switch (family_of(t)) {
    case Family::kPlain:
      return dequantize_plain(t, src, dst, n);
    case Family::kLegacy:
      return dequantize_legacy(t, src, dst, n);
    case Family::kKQuant:
      return dequantize_kquant(t, src, dst, n);
    case Family::kIq:
      return dequantize_iq(t, src, dst, n);
  }
  return Status::error("quant: dequantize: unhandled type family");
}

bool can_quantize(Type t) {
  if (!type_traits(static_cast<uint32_t>(t))) return false;
  switch (family_of(t)) {
    case Family::kPlain:
      return can_quantize_plain(t);
    case Family::kLegacy:
      return can_quantize_legacy(t);
    case Family::kKQuant:
      return can_quantize_kquant(t);
    case Family::kIq:
      return can_quantize_iq(t);
  }
  return false;
}

Status quantize(Type t, const float* src, void* dst, int64_t n) {
  RF_RETURN_IF_ERROR(check_args("quantize", static_cast<uint32_t>(t), src, dst, n));
  if (!can_quantize(t)) {
    return Status::error("quant: quantize: no quantizer for type " + std::string(type_name(t)));
  }
  if (n == 0) return ok_status();
  switch (family_of(t)) {
    case Family::kPlain:
      return quantize_plain(t, src, dst, n);
    case Family::kLegacy:
      return quantize_legacy(t, src, dst, n);
    case Family::kKQuant:
      return quantize_kquant(t, src, dst, n);
    case Family::kIq:
      return quantize_iq(t, src, dst, n);
  }
  return Status::error("quant: quantize: unhandled type family");
}

}  // namespace rf::quant
