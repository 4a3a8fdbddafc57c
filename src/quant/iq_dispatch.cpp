// formats.h's IQ-family entry points: route a validated call to the per-type block codec.
#include <string>

#include "quant/formats.h"
#include "quant/iq_internal.h"

namespace rf::quant {
namespace {

Status not_in_family(Type t, const char* what) {
  return Status::error(std::string("quant: ") + what + ": type " + std::string(type_name(t)) +
                       " is not an IQ/TQ/MXFP4 type (internal dispatch error)");
}

using DequantFn = void (*)(const uint8_t*, float*, int64_t);
using QuantFn = void (*)(const float*, uint8_t*, int64_t);

DequantFn dequant_fn(Type t) {
  switch (t) {
    case Type::IQ2_XXS:
      return iq::dequantize_iq2_xxs;
    case Type::IQ2_XS:
      return iq::dequantize_iq2_xs;
    case Type::IQ2_S:
      return iq::dequantize_iq2_s;
    case Type::IQ3_XXS:
      return iq::dequantize_iq3_xxs;
    case Type::IQ3_S:
      return iq::dequantize_iq3_s;
    case Type::IQ1_S:
      return iq::dequantize_iq1_s;
    case Type::IQ1_M:
      return iq::dequantize_iq1_m;
    case Type::IQ4_NL:
      return iq::dequantize_iq4_nl;
    case Type::IQ4_XS:
      return iq::dequantize_iq4_xs;
    case Type::TQ1_0:
      return iq::dequantize_tq1_0;
    case Type::TQ2_0:
      return iq::dequantize_tq2_0;
    case Type::MXFP4:
      return iq::dequantize_mxfp4;
    default:
      return nullptr;
  }
}

QuantFn quant_fn(Type t) {
  switch (t) {
    case Type::IQ4_NL:
      return iq::quantize_iq4_nl;
    case Type::IQ4_XS:
      return iq::quantize_iq4_xs;
    case Type::TQ1_0:
      return iq::quantize_tq1_0;
    case Type::TQ2_0:
      return iq::quantize_tq2_0;
    case Type::MXFP4:
      return iq::quantize_mxfp4;
    default:
      return nullptr;
  }
}

}  // namespace

Status dequantize_iq(Type t, const void* src, float* dst, int64_t n) {
  const DequantFn fn = dequant_fn(t);
  if (fn == nullptr) return not_in_family(t, "dequantize");
  const int64_t nb = n / traits(t).block_size;
  if (nb > 0) fn(static_cast<const uint8_t*>(src), dst, nb);
  return ok_status();
}

bool can_quantize_iq(Type t) { return quant_fn(t) != nullptr; }

Status quantize_iq(Type t, const float* src, void* dst, int64_t n) {
  const QuantFn fn = quant_fn(t);
  if (fn == nullptr) {
    if (dequant_fn(t) != nullptr) {
      return Status::error("quant: quantize: no quantizer for " + std::string(type_name(t)) +
                           " (supported in this family: IQ4_NL, IQ4_XS, TQ1_0, TQ2_0, MXFP4)");
    }
    return not_in_family(t, "quantize");
  }
  const int64_t nb = n / traits(t).block_size;
  if (nb > 0) fn(src, static_cast<uint8_t*>(dst), nb);
  return ok_status();
}

}  // namespace rf::quant
