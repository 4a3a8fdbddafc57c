// File::get<T>: typed metadata access with conversions between integer types when the value fits.
#include <fmt/format.h>

#include <utility>

#include "gguf/gguf.h"

namespace rf::gguf {
namespace {

template <typename T>
constexpr bool kIsInt = std::is_integral_v<T> && !std::is_same_v<T, bool>;

template <typename T>
struct IsVector : std::false_type {};
template <typename E>
struct IsVector<std::vector<E>> : std::true_type {
  using Elem = E;
};

template <typename T>
std::string type_label() {
  if constexpr (std::is_same_v<T, bool>)
    return "bool";
  else if constexpr (std::is_same_v<T, float>)
    return "float32";
  else if constexpr (std::is_same_v<T, double>)
    return "float64 or float32";
  else if constexpr (std::is_same_v<T, std::string>)
    return "string";
  else if constexpr (kIsInt<T>)
    return fmt::format("an integer fitting {}{}", std::is_signed_v<T> ? "int" : "uint", 8 * sizeof(T));
  else if constexpr (IsVector<T>::value)
    return fmt::format("array of {}", type_label<typename IsVector<T>::Elem>());
}

// The scalar conversion rules; nullopt when x does not convert to T.
template <typename T, typename X>
std::optional<T> convert_one(const X& x) {
  if constexpr (kIsInt<T> && kIsInt<X>) {
    if (std::in_range<T>(x)) return static_cast<T>(x);
    return std::nullopt;
  } else if constexpr (std::is_same_v<T, double> && (std::is_same_v<X, float> || std::is_same_v<X, double>)) {
    return static_cast<double>(x);
  } else if constexpr (std::is_same_v<T, X> && !kIsInt<T>) {
    return x;
  } else {
    return std::nullopt;
  }
}

template <typename T>
std::optional<T> convert_scalar(const Value& v) {
  return std::visit([](const auto& x) { return convert_one<T>(x); }, v.data);
}

}  // namespace

template <typename T>
Expected<T> File::get(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) {
    return Status::error(
        fmt::format("gguf: {}: metadata key '{}' not found (expected {})", name_, key, type_label<T>()));
  }
  auto mismatch = [&](const std::string& detail) {
    return Status::error(fmt::format("gguf: {}: metadata key '{}': expected {}, got {}{}", name_, key, type_label<T>(),
                                     type_description(*v), detail));
  };
  if constexpr (IsVector<T>::value) {
    using E = typename IsVector<T>::Elem;
    const Array* a = v->array();
    if (a == nullptr) return mismatch("");
    T out;
    out.reserve(a->items.size());
    for (size_t i = 0; i < a->items.size(); ++i) {
      auto e = convert_scalar<E>(a->items[i]);
      if (!e) {
        std::string item = type_description(a->items[i]);
        if (a->items[i].array() == nullptr && a->items[i].string() == nullptr) {
          item = fmt::format("{} {}", item, to_display_string(a->items[i], 0));
        }
        return mismatch(fmt::format(" (item {} is {})", i, item));
      }
      out.push_back(std::move(*e));
    }
    return out;
  } else {
    auto r = convert_scalar<T>(*v);
    if (!r) {
      std::string detail;
      if (v->array() == nullptr && v->string() == nullptr) detail = fmt::format(" {}", to_display_string(*v, 0));
      return mismatch(detail);
    }
    return std::move(*r);
  }
}

Expected<const Array*> File::get_array(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr)
    return Status::error(fmt::format("gguf: {}: metadata key '{}' not found (expected array)", name_, key));
  if (v->array() == nullptr) {
    return Status::error(
        fmt::format("gguf: {}: metadata key '{}': expected array, got {}", name_, key, type_description(*v)));
  }
  return v->array();
}

#define RF_GGUF_GET(T) template Expected<T> File::get<T>(std::string_view key) const;
RF_GGUF_GET(bool)
RF_GGUF_GET(float)
RF_GGUF_GET(double)
RF_GGUF_GET(std::string)
RF_GGUF_GET(uint8_t)
RF_GGUF_GET(int8_t)
RF_GGUF_GET(uint16_t)
RF_GGUF_GET(int16_t)
RF_GGUF_GET(uint32_t)
RF_GGUF_GET(int32_t)
RF_GGUF_GET(uint64_t)
RF_GGUF_GET(int64_t)
RF_GGUF_GET(std::vector<std::string>)
RF_GGUF_GET(std::vector<float>)
RF_GGUF_GET(std::vector<int32_t>)
RF_GGUF_GET(std::vector<uint32_t>)
RF_GGUF_GET(std::vector<int64_t>)
#undef RF_GGUF_GET

}  // namespace rf::gguf
