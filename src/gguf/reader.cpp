// GGUF parsing and validation. Every count and length is bounded by the bytes that remain before anything is
// allocated, every offset is checked with overflow-safe arithmetic, and every failure names what was being read,
// where (byte offset, key or tensor), what was expected and what the file holds.
#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include "gguf/gguf.h"
#include "gguf/shape.h"

namespace rf::gguf {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

namespace {

constexpr uint64_t kReserveLimit = 4096;  // up-front reservations; larger tables grow as entries really parse
// Smallest possible encodings, used to bound counts by the bytes remaining.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;                  // key length, value type, 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // name length, n_dims, 1 dim, type, offset

uint64_t min_value_bytes(ValueType t) {
  switch (t) {
    case ValueType::UINT8:
    case ValueType::INT8:
    case ValueType::BOOL:
      return 1;
    case ValueType::UINT16:
    case ValueType::INT16:
      return 2;
    case ValueType::UINT32:
    case ValueType::INT32:
    case ValueType::FLOAT32:
      return 4;
    case ValueType::UINT64:
    case ValueType::INT64:
    case ValueType::FLOAT64:
    case ValueType::STRING:
      return 8;  // a string is at least its length
    case ValueType::ARRAY:
      return 12;  // element type + count
  }
  return 1;
}

std::string printable(std::span<const uint8_t> b) {
  std::string s;
  for (uint8_t c : b) s += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '.';
  return s;
}

}  // namespace

class Parser {
 public:
  Parser(File& file) : f_(file), b_(file.bytes_) {}

  Status run() {
    RF_RETURN_IF_ERROR(parse_header());
    RF_RETURN_IF_ERROR(parse_metadata());
    RF_RETURN_IF_ERROR(apply_alignment());
    RF_RETURN_IF_ERROR(parse_tensor_infos());
    return place_tensors();
  }

 private:
  template <typename... Args>
  Status error(fmt::format_string<Args...> format, Args&&... args) const {
    return Status::error(fmt::format("gguf: {}: ", f_.name_) + fmt::format(format, std::forward<Args>(args)...));
  }

  size_t remaining() const { return b_.size() - pos_; }

  // `what` names the item being read, e.g. "metadata key #3 'general.name': value".
  Status need(uint64_t n, std::string_view what) const {
    if (n <= remaining()) return ok_status();
    return error("truncated {}: needs {} bytes at offset {} but the file has {} bytes", what, n, pos_, b_.size());
  }

  template <typename T>
  Status read(T* out, std::string_view what) {
    RF_RETURN_IF_ERROR(need(sizeof(T), what));
    std::memcpy(out, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return ok_status();
  }

  Status read_string(std::string* out, std::string_view what) {
    uint64_t len = 0;
    RF_RETURN_IF_ERROR(read(&len, what));
    if (len > remaining()) {
      return error("truncated {}: string length {} at offset {} exceeds the {} bytes remaining in the file", what, len,
                   pos_ - 8, remaining());
    }
    out->assign(reinterpret_cast<const char*>(b_.data() + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return ok_status();
  }

  Status parse_header() {
    uint32_t magic = 0;
    RF_RETURN_IF_ERROR(read(&magic, "header: magic"));
    if (magic != kMagic) {
      return error("bad magic at offset 0: expected \"GGUF\" (0x{:08x}), got \"{}\" (0x{:08x}); not a GGUF file",
                   kMagic, printable(b_.subspan(0, 4)), magic);
    }
    RF_RETURN_IF_ERROR(read(&f_.version_, "header: version"));
    if (f_.version_ == 1) {
      return error(
          "unsupported GGUF version 1 at offset 4: expected 2 or 3 (v1 is an obsolete 2023 format; "
          "re-convert the model)");
    }
    if (f_.version_ != 2 && f_.version_ != 3) {
      std::string hint;
      if (__builtin_bswap32(f_.version_) == 2 || __builtin_bswap32(f_.version_) == 3)
        hint = " (a big-endian GGUF file?)";
      return error("unsupported GGUF version {} at offset 4: expected 2 or 3{}", f_.version_, hint);
    }
    RF_RETURN_IF_ERROR(read(&n_tensors_, "header: tensor count"));
    RF_RETURN_IF_ERROR(read(&n_kv_, "header: metadata count"));
    // Bound both counts by the bytes that remain before anything is reserved.
    if (n_kv_ > remaining() / kMinKvBytes) {
      return error(
          "metadata count {} at offset 16 is impossible: each entry needs at least {} bytes but only {} "
          "bytes remain",
          n_kv_, kMinKvBytes, remaining());
    }
    if (n_tensors_ > remaining() / kMinTensorInfoBytes) {
      return error(
          "tensor count {} at offset 8 is impossible: each tensor info needs at least {} bytes but only {} "
          "bytes remain",
          n_tensors_, kMinTensorInfoBytes, remaining());
    }
    return ok_status();
  }

  Status read_value(ValueType type, int depth, Value* out, std::string& what) {
    switch (type) {
      case ValueType::UINT8:
        return read_scalar<uint8_t>(out, what);
      case ValueType::INT8:
        return read_scalar<int8_t>(out, what);
      case ValueType::UINT16:
        return read_scalar<uint16_t>(out, what);
      case ValueType::INT16:
        return read_scalar<int16_t>(out, what);
      case ValueType::UINT32:
        return read_scalar<uint32_t>(out, what);
      case ValueType::INT32:
        return read_scalar<int32_t>(out, what);
      case ValueType::FLOAT32:
        return read_scalar<float>(out, what);
      case ValueType::UINT64:
        return read_scalar<uint64_t>(out, what);
      case ValueType::INT64:
        return read_scalar<int64_t>(out, what);
      case ValueType::FLOAT64:
        return read_scalar<double>(out, what);
      case ValueType::BOOL: {
        uint8_t v = 0;
        RF_RETURN_IF_ERROR(read(&v, what));
        if (v > 1) return error("{}: bool at offset {} must be 0 or 1, got {}", what, pos_ - 1, v);
        out->data = v == 1;
        return ok_status();
      }
      case ValueType::STRING: {
        std::string s;
        RF_RETURN_IF_ERROR(read_string(&s, what));
        out->data = std::move(s);
        return ok_status();
      }
      case ValueType::ARRAY:
        return read_array(depth, out, what);
    }
    return error("{}: internal: unhandled value type", what);
  }

  template <typename T>
  Status read_scalar(Value* out, const std::string& what) {
    T v{};
    RF_RETURN_IF_ERROR(read(&v, what));
    out->data = v;
    return ok_status();
  }

  Status read_array(int depth, Value* out, std::string& what) {
    if (depth >= kMaxArrayNesting) {
      return error("{}: arrays nested deeper than {} levels at offset {}", what, kMaxArrayNesting, pos_);
    }
    uint32_t raw_type = 0;
    RF_RETURN_IF_ERROR(read(&raw_type, what + ": array element type"));
    if (!is_valid_value_type(raw_type)) {
      return error("{}: unknown array element type {} at offset {}: expected 0..12", what, raw_type, pos_ - 4);
    }
    auto elem_type = static_cast<ValueType>(raw_type);
    uint64_t count = 0;
    RF_RETURN_IF_ERROR(read(&count, what + ": array length"));
    uint64_t min_bytes = min_value_bytes(elem_type);
    if (count > remaining() / min_bytes) {
      return error(
          "truncated {}: array of {} {} at offset {} needs at least {} bytes per item but only {} bytes "
          "remain",
          what, count, value_type_name(elem_type), pos_ - 12, min_bytes, remaining());
    }
    total_items_ += count;
    if (total_items_ > kMaxMetadataItems) {
      return error(
          "{}: array of {} items at offset {} takes the metadata past {} array items in total; refusing to "
          "load (hostile or corrupt file?)",
          what, count, pos_ - 12, kMaxMetadataItems);
    }
    Array arr;
    arr.elem_type = elem_type;
    arr.items.resize(static_cast<size_t>(count));
    const size_t base_len = what.size();
    for (uint64_t i = 0; i < count; ++i) {
      what.resize(base_len);
      what += '[';
      what += std::to_string(i);
      what += ']';
      RF_RETURN_IF_ERROR(read_value(elem_type, depth + 1, &arr.items[i], what));
    }
    what.resize(base_len);
    out->data = std::move(arr);
    return ok_status();
  }

  Status parse_metadata() {
    f_.kvs_.reserve(static_cast<size_t>(std::min<uint64_t>(n_kv_, kReserveLimit)));  // grows with real entries
    for (uint64_t i = 0; i < n_kv_; ++i) {
      KeyValue kv;
      RF_RETURN_IF_ERROR(read_string(&kv.key, fmt::format("metadata key #{}", i)));
      std::string what = fmt::format("metadata key #{} '{}'", i, display_name(kv.key));
      uint32_t raw_type = 0;
      RF_RETURN_IF_ERROR(read(&raw_type, what + ": value type"));
      if (!is_valid_value_type(raw_type)) {
        return error("{}: unknown value type {} at offset {}: expected 0..12", what, raw_type, pos_ - 4);
      }
      RF_RETURN_IF_ERROR(read_value(static_cast<ValueType>(raw_type), 0, &kv.value, what));
      auto [it, inserted] = f_.kv_index_.emplace(kv.key, f_.kvs_.size());
      if (!inserted) {
        return error("duplicate metadata key '{}': entries #{} and #{} both define it", display_name(kv.key),
                     it->second, i);
      }
      f_.kvs_.push_back(std::move(kv));
    }
    return ok_status();
  }

  Status apply_alignment() {
    const Value* v = f_.find("general.alignment");
    if (v == nullptr) return ok_status();
    const auto* a = std::get_if<uint32_t>(&v->data);
    if (a == nullptr) {
      return error("metadata 'general.alignment': expected type uint32, got {}", type_description(*v));
    }
    if (*a == 0 || !std::has_single_bit(*a)) {
      return error("metadata 'general.alignment': expected a non-zero power of two, got {}", *a);
    }
    f_.alignment_ = *a;
    return ok_status();
  }

  Status parse_tensor_infos() {
    f_.tensors_.reserve(static_cast<size_t>(std::min<uint64_t>(n_tensors_, kReserveLimit)));
    for (uint64_t i = 0; i < n_tensors_; ++i) {
      TensorInfo t;
      RF_RETURN_IF_ERROR(read_string(&t.name, fmt::format("tensor info #{}: name", i)));
      std::string what = fmt::format("tensor info #{} '{}'", i, display_name(t.name));
      uint32_t n_dims = 0;
      size_t dims_at = pos_;
      RF_RETURN_IF_ERROR(read(&n_dims, what + ": n_dims"));
      if (n_dims < 1 || n_dims > static_cast<uint32_t>(kMaxDims)) {
        return error("tensor '{}': n_dims {} at offset {}: expected 1..{}", display_name(t.name), n_dims, dims_at,
                     kMaxDims);
      }
      t.n_dims = static_cast<int>(n_dims);
      for (int d = 0; d < t.n_dims; ++d) {
        uint64_t raw = 0;
        RF_RETURN_IF_ERROR(read(&raw, what + ": dimensions"));
        auto dim = static_cast<int64_t>(raw);
        if (dim <= 0) return error("tensor '{}': dimension {} is {}: expected > 0", display_name(t.name), d, dim);
        t.ne[d] = dim;
      }
      uint32_t raw_type = 0;
      RF_RETURN_IF_ERROR(read(&raw_type, what + ": type"));
      auto traits = quant::type_traits(raw_type);
      if (!traits) {
        return error("tensor '{}': unknown tensor type id {} at offset {}", display_name(t.name), raw_type, pos_ - 4);
      }
      t.type = traits->type;
      RF_RETURN_IF_ERROR(read(&t.offset, what + ": data offset"));
      if (Status s = check_tensor_shape(t); !s.ok()) return error("{}", s.message());
      auto [it, inserted] = f_.tensor_index_.emplace(t.name, f_.tensors_.size());
      if (!inserted) {
        return error("duplicate tensor name '{}': tensor infos #{} and #{} both define it", display_name(t.name),
                     it->second, i);
      }
      f_.tensors_.push_back(std::move(t));
    }
    return ok_status();
  }

  Status place_tensors() {
    const uint64_t align = f_.alignment_;
    const uint64_t header_end = pos_;
    f_.data_offset_ = (header_end + align - 1) / align * align;  // header_end < file size, no overflow
    const uint64_t size = b_.size();
    for (TensorInfo& t : f_.tensors_) {
      if (t.offset % align != 0) {
        return error("tensor '{}': data offset {} is not a multiple of the alignment {}", display_name(t.name),
                     t.offset, align);
      }
      uint64_t begin = 0;
      uint64_t end = 0;
      if (__builtin_add_overflow(f_.data_offset_, t.offset, &begin) || __builtin_add_overflow(begin, t.n_bytes, &end)) {
        return error("tensor '{}': data at relative offset {} ({} bytes) lies beyond any possible file size",
                     display_name(t.name), t.offset, t.n_bytes);
      }
      if (end > size) {
        return error("tensor '{}': data ends at byte {} but the file has {} bytes", display_name(t.name), end, size);
      }
      t.data = b_.data() + begin;
    }
    return ok_status();
  }

  File& f_;
  std::span<const uint8_t> b_;
  size_t pos_ = 0;
  uint64_t n_tensors_ = 0;
  uint64_t n_kv_ = 0;
  uint64_t total_items_ = 0;
};

Expected<std::shared_ptr<File>> File::parse(std::span<const uint8_t> bytes, std::string name) {
  std::shared_ptr<File> file(new File());
  file->bytes_ = bytes;
  file->name_ = std::move(name);
  Parser parser(*file);
  RF_RETURN_IF_ERROR(parser.run());
  return file;
}

Expected<std::shared_ptr<File>> File::open(const std::string& path) {
  auto mapping = MappedFile::open(path);
  if (!mapping) return Status::error("gguf: " + mapping.error_message());
  auto file = parse((*mapping)->bytes(), path);
  if (!file) return file.status();
  (*file)->mapping_ = std::move(*mapping);
  return file;
}

const Value* File::find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kvs_[it->second].value;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace rf::gguf
