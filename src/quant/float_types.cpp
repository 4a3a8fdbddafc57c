// Plain element types: IEEE floats of 16/32/64 bits, bfloat16, and signed integers.
// Sources may be unaligned (tensor data inside a file), so every element is read with memcpy.
#include <cstring>
#include <string>

#include "core/half.h"
#include "quant/formats.h"

namespace rf::quant {
namespace {

template <typename T>
T load(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

template <typename T>
void store(unsigned char* p, T v) {
  std::memcpy(p, &v, sizeof(T));
}

// Converts each element of type E with conv(E) -> float.
template <typename E, typename Conv>
void convert_all(const void* src, float* dst, int64_t n, Conv conv) {
  const auto* p = static_cast<const unsigned char*>(src);
  for (int64_t i = 0; i < n; ++i) dst[i] = conv(load<E>(p + i * static_cast<int64_t>(sizeof(E))));
}

Status wrong_family(const char* op, Type t) {
  return Status::error(std::string("quant: ") + op + ": " + std::string(type_name(t)) + " is not a plain type");
}

}  // namespace

Status dequantize_plain(Type t, const void* src, float* dst, int64_t n) {
  switch (t) {
    case Type::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return ok_status();
    case Type::F16:
      convert_all<uint16_t>(src, dst, n, [](uint16_t h) { return fp16_to_fp32(h); });
      return ok_status();
    case Type::BF16:
      convert_all<uint16_t>(src, dst, n, [](uint16_t h) { return bf16_to_fp32(h); });
      return ok_status();
    case Type::F64:
      convert_all<double>(src, dst, n, [](double v) { return static_cast<float>(v); });
      return ok_status();
    case Type::I8:
      convert_all<int8_t>(src, dst, n, [](int8_t v) { return static_cast<float>(v); });
      return ok_status();
    case Type::I16:
      convert_all<int16_t>(src, dst, n, [](int16_t v) { return static_cast<float>(v); });
      return ok_status();
    case Type::I32:
      convert_all<int32_t>(src, dst, n, [](int32_t v) { return static_cast<float>(v); });
      return ok_status();
    case Type::I64:
      convert_all<int64_t>(src, dst, n, [](int64_t v) { return static_cast<float>(v); });
      return ok_status();
    default:
      return wrong_family("dequantize", t);
  }
}

bool can_quantize_plain(Type t) { return t == Type::F32 || t == Type::F16 || t == Type::BF16; }

Status quantize_plain(Type t, const float* src, void* dst, int64_t n) {
  auto* out = static_cast<unsigned char*>(dst);
  switch (t) {
    case Type::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return ok_status();
    case Type::F16:
      for (int64_t i = 0; i < n; ++i) store<uint16_t>(out + 2 * i, fp32_to_fp16(src[i]));
      return ok_status();
    case Type::BF16:
      for (int64_t i = 0; i < n; ++i) store<uint16_t>(out + 2 * i, fp32_to_bf16(src[i]));
      return ok_status();
    default:
      return wrong_family("quantize", t);
  }
}

}  // namespace rf::quant
