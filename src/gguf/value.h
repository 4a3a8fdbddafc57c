// GGUF metadata values: every GGUF value type, including nested arrays.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace rf::gguf {

// On-disk value type ids.
enum class ValueType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};

std::string_view value_type_name(ValueType t);  // "uint32", "string", "array", ...

struct Value;

// A typed array; elements all have elem_type (arrays of arrays are allowed).
struct Array {
  ValueType elem_type = ValueType::UINT8;
  std::vector<Value> items;

  friend bool operator==(const Array&, const Array&) = default;  // floats compare by value (NaN != NaN)
};

struct Value {
  using Storage = std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool, std::string,
                               Array, uint64_t, int64_t, double>;
  Storage data;

  Value() = default;
  template <typename T>
  Value(T v) : data(std::move(v)) {}  // NOLINT(google-explicit-constructor)

  // The variant index order above equals the on-disk type id order except ARRAY/UINT64/...: use type().
  ValueType type() const;
  const Array* array() const { return std::get_if<Array>(&data); }
  const std::string* string() const { return std::get_if<std::string>(&data); }

  friend bool operator==(const Value&, const Value&) = default;  // same type and value
};

// True for the on-disk value type ids 0..12.
bool is_valid_value_type(uint32_t raw_id);
// "uint32", "string", "array[3] of string", "array[2] of array[4] of float32".
std::string type_description(const Value& v);
// Human-readable rendering; arrays show at most max_items items per level, then "... (N items)".
std::string to_display_string(const Value& v, size_t max_items = 8);

}  // namespace rf::gguf
