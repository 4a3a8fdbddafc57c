// GGUF v2/v3 reader: mmaps the file, validates every offset and count, and exposes typed metadata
// and the tensor directory. All errors are values with precise messages; hostile files never crash.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/mapped_file.h"
#include "core/status.h"
#include "gguf/value.h"
#include "quant/types.h"

namespace rf::gguf {

inline constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
inline constexpr uint32_t kDefaultAlignment = 32;
inline constexpr int kMaxDims = 4;
inline constexpr int kMaxArrayNesting = 8;  // arrays of arrays deeper than this are rejected
// Array items in all metadata together (real vocabularies hold < 2M); bounds memory for hostile files.
inline constexpr uint64_t kMaxMetadataItems = uint64_t{1} << 24;

struct TensorInfo {
  std::string name;
  quant::Type type = quant::Type::F32;
  int n_dims = 0;
  std::array<int64_t, kMaxDims> ne = {1, 1, 1, 1};  // ne[0] is the contiguous (row) dimension
  uint64_t offset = 0;                             // relative to the start of the data section
  size_t n_bytes = 0;
  const uint8_t* data = nullptr;  // points into the mapping (nullptr for in-memory parses of headers only)

  int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  int64_t n_rows() const { return ne[1] * ne[2] * ne[3]; }
};

struct KeyValue {
  std::string key;
  Value value;
};

class File {
 public:
  // Maps and parses path. Tensor data is validated to lie inside the file but is not read.
  static Expected<std::shared_ptr<File>> open(const std::string& path);
  // Parses a buffer the caller keeps alive (tests, fuzzing). `name` appears in messages.
  static Expected<std::shared_ptr<File>> parse(std::span<const uint8_t> bytes, std::string name = "<memory>");

  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  // Absolute offset of the data section (the end of the header rounded up to the alignment). In a file without
  // tensors it may lie past file_size(): such files need not carry the padding.
  uint64_t data_offset() const { return data_offset_; }
  size_t file_size() const { return bytes_.size(); }
  const std::string& name() const { return name_; }

  // Metadata in file order.
  const std::vector<KeyValue>& metadata() const { return kvs_; }
  const Value* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }

  // Typed getters. Integers convert between integer types when the value fits (also element-wise in vectors);
  // double also accepts float32; otherwise the type must match exactly (bool is not an integer). Errors say which key, the expected type and what the file holds.
  // T in: bool, float, double, std::string, (u)int8..64, std::vector<std::string>, std::vector<float>,
  // std::vector<int32_t>, std::vector<uint32_t>, std::vector<int64_t>.
  template <typename T>
  Expected<T> get(std::string_view key) const;
  template <typename T>
  Expected<T> get_or(std::string_view key, T fallback) const {
    if (!has(key)) return fallback;
    return get<T>(key);
  }

  // The array stored under key; an error when the key is missing or holds no array.
  Expected<const Array*> get_array(std::string_view key) const;

  // Tensors in file order.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;

 private:
  friend class Parser;
  std::shared_ptr<MappedFile> mapping_;  // keeps data alive (null for parse())
  std::span<const uint8_t> bytes_;
  std::string name_;
  uint32_t version_ = 0;
  uint32_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<KeyValue> kvs_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace rf::gguf
