#include "gguf/writer.h"

#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>

#include "core/check.h"
#include "gguf/shape.h"

namespace rf::gguf {
namespace {

constexpr size_t kFileBufferBytes = 1 << 20;

uint64_t align_up(uint64_t n, uint64_t align) { return (n + align - 1) / align * align; }

void put_raw(std::vector<uint8_t>& out, const void* p, size_t n) {
  if (n == 0) return;
  size_t at = out.size();
  out.resize(at + n);
  std::memcpy(out.data() + at, p, n);
}

template <typename T>
void put(std::vector<uint8_t>& out, T v) {
  put_raw(out, &v, sizeof(T));
}

void put_string(std::vector<uint8_t>& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  put_raw(out, s.data(), s.size());
}

void put_value(std::vector<uint8_t>& out, const Value& v) {
  std::visit(
      [&](const auto& x) {
        using X = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<X, std::string>) {
          put_string(out, x);
        } else if constexpr (std::is_same_v<X, Array>) {
          put<uint32_t>(out, static_cast<uint32_t>(x.elem_type));
          put<uint64_t>(out, x.items.size());
          for (const Value& item : x.items) put_value(out, item);
        } else if constexpr (std::is_same_v<X, bool>) {
          put<uint8_t>(out, x ? 1 : 0);
        } else {
          put<X>(out, x);
        }
      },
      v.data);
}

// Arrays must be homogeneous and no deeper than the reader accepts; `where` names the key for messages.
Status check_value(const Value& v, int depth, const std::string& where, uint64_t* items) {
  const Array* a = v.array();
  if (a == nullptr) return ok_status();
  *items += a->items.size();
  if (depth >= kMaxArrayNesting) {
    return Status::error(
        fmt::format("gguf writer: metadata '{}': arrays nested deeper than {} levels", where, kMaxArrayNesting));
  }
  for (size_t i = 0; i < a->items.size(); ++i) {
    if (a->items[i].type() != a->elem_type) {
      return Status::error(fmt::format("gguf writer: metadata '{}': array of {} holds a {} at index {}", where,
                                       value_type_name(a->elem_type), value_type_name(a->items[i].type()), i));
    }
    RF_RETURN_IF_ERROR(check_value(a->items[i], depth + 1, where, items));
  }
  return ok_status();
}

}  // namespace

Writer::Writer(uint32_t version) : version_(version) {
  RF_CHECK_MSG(version == 2 || version == 3, "the GGUF writer writes versions 2 and 3");
}

Writer::~Writer() {
  if (file_ != nullptr) {  // never finished: drop the partial file, the destination is left as it was
    std::fclose(file_);
    std::remove(partial_path_.c_str());
  }
}

std::string Writer::where() const { return to_memory_ ? std::string("<memory>") : path_; }

Status Writer::add(std::string key, Value value) {
  if (phase_ != Phase::kDeclaring) {
    return Status::error(fmt::format("gguf writer: metadata '{}' added after the header was written", key));
  }
  if (std::any_of(kvs_.begin(), kvs_.end(), [&](const KeyValue& kv) { return kv.key == key; })) {
    return Status::error(fmt::format("gguf writer: duplicate metadata key '{}'", key));
  }
  uint64_t items = total_items_;
  RF_RETURN_IF_ERROR(check_value(value, 0, key, &items));
  if (items > kMaxMetadataItems) {
    return Status::error(
        fmt::format("gguf writer: metadata '{}': more than {} array items in total (readers refuse "
                    "such files)",
                    key, kMaxMetadataItems));
  }
  total_items_ = items;
  if (key == "general.alignment") {
    const auto* a = std::get_if<uint32_t>(&value.data);
    if (a == nullptr || *a == 0 || !std::has_single_bit(*a)) {
      return Status::error(fmt::format("gguf writer: 'general.alignment' must be a uint32 power of two, got {} {}",
                                       type_description(value), to_display_string(value, 4)));
    }
    alignment_ = *a;
  }
  kvs_.push_back(KeyValue{std::move(key), std::move(value)});
  relayout();
  return ok_status();
}

Status Writer::add_tensor(std::string name, quant::Type type, std::span<const int64_t> ne) {
  if (phase_ != Phase::kDeclaring) {
    return Status::error(fmt::format("gguf writer: tensor '{}' declared after the header was written", name));
  }
  if (names_.count(name) != 0) return Status::error(fmt::format("gguf writer: duplicate tensor name '{}'", name));
  TensorInfo t;
  t.name = std::move(name);
  t.type = type;
  if (ne.size() < 1 || ne.size() > static_cast<size_t>(kMaxDims)) {
    return Status::error(
        fmt::format("gguf writer: tensor '{}': {} dimensions: expected 1..{}", t.name, ne.size(), kMaxDims));
  }
  t.n_dims = static_cast<int>(ne.size());
  for (size_t d = 0; d < ne.size(); ++d) t.ne[d] = ne[d];
  if (Status s = check_tensor_shape(t); !s.ok()) return Status::error("gguf writer: " + s.message());
  names_.emplace(t.name, tensors_.size());
  tensors_.push_back(std::move(t));
  relayout();
  return ok_status();
}

void Writer::relayout() {
  uint64_t offset = 0;
  for (TensorInfo& t : tensors_) {
    t.offset = offset;
    offset = align_up(offset + t.n_bytes, alignment_);
  }
}

std::vector<uint8_t> Writer::header_bytes() const {
  std::vector<uint8_t> out;
  put<uint32_t>(out, kMagic);
  put<uint32_t>(out, version_);
  put<uint64_t>(out, tensors_.size());
  put<uint64_t>(out, kvs_.size());
  for (const KeyValue& kv : kvs_) {
    put_string(out, kv.key);
    put<uint32_t>(out, static_cast<uint32_t>(kv.value.type()));
    put_value(out, kv.value);
  }
  for (const TensorInfo& t : tensors_) {
    put_string(out, t.name);
    put<uint32_t>(out, static_cast<uint32_t>(t.n_dims));
    for (int d = 0; d < t.n_dims; ++d) put<uint64_t>(out, static_cast<uint64_t>(t.ne[d]));
    put<uint32_t>(out, static_cast<uint32_t>(t.type));
    put<uint64_t>(out, t.offset);
  }
  if (!tensors_.empty()) out.resize(align_up(out.size(), alignment_), 0);
  return out;
}

uint64_t Writer::file_size() const {
  uint64_t size = header_bytes().size();
  if (!tensors_.empty()) size += align_up(tensors_.back().offset + tensors_.back().n_bytes, alignment_);
  return size;
}

Status Writer::begin_file(const std::string& path) {
  if (phase_ != Phase::kDeclaring) return Status::error("gguf writer: begin called twice");
  path_ = path;
  // Written beside the destination and renamed into place by finish(): readers that have the old file mapped
  // keep a valid file, and an interrupted write never leaves a truncated model under the final name.
  partial_path_ = path + ".partial-" + std::to_string(::getpid());
  file_ = std::fopen(partial_path_.c_str(), "wb");
  if (file_ == nullptr) {
    return Status::error(fmt::format("gguf writer: cannot create '{}': {}", partial_path_, std::strerror(errno)));
  }
  std::setvbuf(file_, nullptr, _IOFBF, kFileBufferBytes);
  return start();
}

Status Writer::begin_memory() {
  if (phase_ != Phase::kDeclaring) return Status::error("gguf writer: begin called twice");
  to_memory_ = true;
  return start();
}

Status Writer::start() {
  phase_ = Phase::kWriting;
  std::vector<uint8_t> header = header_bytes();
  return emit(header);
}

Status Writer::emit(std::span<const uint8_t> bytes) {
  if (to_memory_) {
    put_raw(memory_, bytes.data(), bytes.size());
    return ok_status();
  }
  if (bytes.empty()) return ok_status();
  if (std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size()) {
    return Status::error(fmt::format("gguf writer: writing '{}' failed: {}", path_, std::strerror(errno)));
  }
  return ok_status();
}

Status Writer::emit_zeros(uint64_t n) {
  static constexpr uint8_t kZeros[256] = {};
  while (n > 0) {
    uint64_t chunk = std::min<uint64_t>(n, sizeof(kZeros));
    RF_RETURN_IF_ERROR(emit({kZeros, static_cast<size_t>(chunk)}));
    n -= chunk;
  }
  return ok_status();
}

Status Writer::write_tensor_data(std::span<const uint8_t> bytes) {
  if (phase_ != Phase::kWriting) return Status::error("gguf writer: tensor data written before begin or after finish");
  if (current_ >= tensors_.size()) {
    return Status::error(fmt::format("gguf writer: {} bytes of tensor data beyond the last tensor", bytes.size()));
  }
  const TensorInfo& t = tensors_[current_];
  if (bytes.size() > t.n_bytes - written_in_current_) {
    return Status::error(fmt::format("gguf writer: tensor '{}': {} bytes written but it holds {} bytes", t.name,
                                     written_in_current_ + bytes.size(), t.n_bytes));
  }
  RF_RETURN_IF_ERROR(emit(bytes));
  written_in_current_ += bytes.size();
  if (written_in_current_ == t.n_bytes) {
    RF_RETURN_IF_ERROR(emit_zeros(align_up(t.n_bytes, alignment_) - t.n_bytes));
    ++current_;
    written_in_current_ = 0;
  }
  return ok_status();
}

Status Writer::write_tensor(std::string_view name, std::span<const uint8_t> bytes) {
  if (current_ >= tensors_.size() || tensors_[current_].name != name) {
    return Status::error(fmt::format("gguf writer: tensor '{}' written out of order: expected '{}'", name,
                                     current_ < tensors_.size() ? tensors_[current_].name : "<none: all written>"));
  }
  if (written_in_current_ != 0 || bytes.size() != tensors_[current_].n_bytes) {
    return Status::error(fmt::format("gguf writer: tensor '{}': got {} bytes, expected {}", name,
                                     written_in_current_ + bytes.size(), tensors_[current_].n_bytes));
  }
  return write_tensor_data(bytes);
}

Status Writer::finish() {
  if (phase_ != Phase::kWriting) return Status::error("gguf writer: finish without begin, or called twice");
  phase_ = Phase::kFinished;
  Status result = ok_status();
  if (current_ < tensors_.size()) {
    result = Status::error(fmt::format("gguf writer: {}: finished after {} of {} tensors ('{}' has {} of {} bytes)",
                                       where(), current_, tensors_.size(), tensors_[current_].name, written_in_current_,
                                       tensors_[current_].n_bytes));
  }
  if (file_ != nullptr) {
    bool failed = std::fflush(file_) != 0;
    failed |= std::fclose(file_) != 0;
    file_ = nullptr;
    if (failed && result.ok()) {
      result = Status::error(fmt::format("gguf writer: closing '{}' failed: {}", path_, std::strerror(errno)));
    }
    if (result.ok() && std::rename(partial_path_.c_str(), path_.c_str()) != 0) {
      result = Status::error(fmt::format("gguf writer: renaming '{}' to '{}' failed: {}", partial_path_, path_,
                                         std::strerror(errno)));
    }
    if (!result.ok()) std::remove(partial_path_.c_str());
  }
  return result;
}

namespace {

Status declare(Writer& w, std::span<const KeyValue> metadata, std::span<const TensorData> tensors) {
  for (const KeyValue& kv : metadata) RF_RETURN_IF_ERROR(w.add(kv.key, kv.value));
  for (const TensorData& t : tensors) RF_RETURN_IF_ERROR(w.add_tensor(t.name, t.type, t.ne));
  return ok_status();
}

Status write_all(Writer& w, std::span<const TensorData> tensors) {
  for (const TensorData& t : tensors) RF_RETURN_IF_ERROR(w.write_tensor(t.name, t.data));
  return w.finish();
}

}  // namespace

Status write_file(const std::string& path, std::span<const KeyValue> metadata, std::span<const TensorData> tensors,
                  uint32_t version) {
  Writer w(version);
  RF_RETURN_IF_ERROR(declare(w, metadata, tensors));
  RF_RETURN_IF_ERROR(w.begin_file(path));
  return write_all(w, tensors);
}

Expected<std::vector<uint8_t>> write_memory(std::span<const KeyValue> metadata, std::span<const TensorData> tensors,
                                            uint32_t version) {
  Writer w(version);
  RF_RETURN_IF_ERROR(declare(w, metadata, tensors));
  RF_RETURN_IF_ERROR(w.begin_memory());
  RF_RETURN_IF_ERROR(write_all(w, tensors));
  return w.take_memory();
}

std::vector<TensorData> tensor_data_of(const File& file) {
  std::vector<TensorData> out;
  out.reserve(file.tensors().size());
  for (const TensorInfo& t : file.tensors()) {
    out.push_back(TensorData{t.name, t.type, std::vector<int64_t>(t.ne.begin(), t.ne.begin() + t.n_dims),
                             std::span<const uint8_t>(t.data, t.data == nullptr ? 0 : t.n_bytes)});
  }
  return out;
}

}  // namespace rf::gguf
