#include "gguf/value.h"

#include <fmt/format.h>

namespace rf::gguf {

std::string_view value_type_name(ValueType t) {
  switch (t) {
    case ValueType::UINT8:
      return "uint8";
    case ValueType::INT8:
      return "int8";
    case ValueType::UINT16:
      return "uint16";
    case ValueType::INT16:
      return "int16";
    case ValueType::UINT32:
      return "uint32";
    case ValueType::INT32:
      return "int32";
    case ValueType::FLOAT32:
      return "float32";
    case ValueType::BOOL:
      return "bool";
    case ValueType::STRING:
      return "string";
    case ValueType::ARRAY:
      return "array";
    case ValueType::UINT64:
      return "uint64";
    case ValueType::INT64:
      return "int64";
    case ValueType::FLOAT64:
      return "float64";
  }
  return "unknown";
}

bool is_valid_value_type(uint32_t raw_id) { return raw_id <= static_cast<uint32_t>(ValueType::FLOAT64); }

// The variant alternatives are declared in on-disk id order, so the index is the type id.
static_assert(std::variant_size_v<Value::Storage> == 13);
static_assert(std::is_same_v<std::variant_alternative_t<static_cast<size_t>(ValueType::ARRAY), Value::Storage>, Array>);
static_assert(
    std::is_same_v<std::variant_alternative_t<static_cast<size_t>(ValueType::UINT64), Value::Storage>, uint64_t>);
static_assert(
    std::is_same_v<std::variant_alternative_t<static_cast<size_t>(ValueType::FLOAT64), Value::Storage>, double>);

ValueType Value::type() const { return static_cast<ValueType>(data.index()); }

std::string type_description(const Value& v) {
  const Array* a = v.array();
  if (a == nullptr) return std::string(value_type_name(v.type()));
  std::string inner = a->items.empty() ? std::string(value_type_name(a->elem_type)) : type_description(a->items[0]);
  return fmt::format("array[{}] of {}", a->items.size(), inner);
}

std::string to_display_string(const Value& v, size_t max_items) {
  return std::visit(
      [&](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, Array>) {
          std::string out = "[";
          size_t shown = std::min(max_items, x.items.size());
          for (size_t i = 0; i < shown; ++i) {
            if (i > 0) out += ", ";
            out += to_display_string(x.items[i], max_items);
          }
          if (shown < x.items.size()) out += fmt::format("{}... ({} items)", shown > 0 ? ", " : "", x.items.size());
          return out + "]";
        } else if constexpr (std::is_same_v<T, std::string>) {
          return fmt::format("\"{}\"", x);
        } else if constexpr (std::is_same_v<T, bool>) {
          return x ? "true" : "false";
        } else if constexpr (std::is_same_v<T, uint8_t> || std::is_same_v<T, int8_t>) {
          return fmt::format("{}", static_cast<int>(x));
        } else {
          return fmt::format("{}", x);
        }
      },
      v.data);
}

}  // namespace rf::gguf
