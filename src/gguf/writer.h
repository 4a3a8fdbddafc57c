// GGUF v3 (or v2) writer. Streaming: declare metadata and tensors (name, type, shape), then begin() writes the
// header and each tensor's bytes follow in declaration order, in as many chunks as the caller likes, with the
// alignment padding inserted by the writer. Nothing but the header is held in memory, so files larger than RAM
// can be written. The writer computes every offset; the layout is the canonical one (tensors packed in order,
// each padded to the alignment; no padding after the header when there are no tensors).
#pragma once

#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "gguf/gguf.h"

namespace rf::gguf {

class Writer {
 public:
  explicit Writer(uint32_t version = 3);  // 2 or 3 (identical little-endian layouts)
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Declaration phase (before begin). Metadata keeps the order of the calls; duplicate keys are an error.
  // "general.alignment" (a uint32 power of two) sets the alignment of the data section and of every tensor.
  Status add(std::string key, Value value);
  // Declares the next tensor; ne[0] is the contiguous row dimension (1 to 4 dims, each > 0, row a multiple of the
  // type's block size). Duplicate names are an error.
  Status add_tensor(std::string name, quant::Type type, std::span<const int64_t> ne);
  Status add_tensor(std::string name, quant::Type type, std::initializer_list<int64_t> ne) {
    return add_tensor(std::move(name), type, std::span<const int64_t>(ne.begin(), ne.size()));
  }

  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  const std::vector<KeyValue>& metadata() const { return kvs_; }
  // Declared tensors with their computed offsets (relative to the data section) and sizes; data is nullptr.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // The header: magic through the padding before the data section.
  std::vector<uint8_t> header_bytes() const;
  // Size of the complete file.
  uint64_t file_size() const;

  // Writing phase. begin_file/begin_memory write the header; then the tensors' bytes follow in declaration order.
  Status begin_file(const std::string& path);
  Status begin_memory();
  // Appends bytes to the current tensor; a tensor may be written in several chunks. When a tensor is complete the
  // padding is written and the next tensor becomes current. Writing past a tensor's size is an error.
  Status write_tensor_data(std::span<const uint8_t> bytes);
  // Writes a whole tensor; `name` must be the current tensor's (checks the order) and bytes its full size.
  Status write_tensor(std::string_view name, std::span<const uint8_t> bytes);
  // Index of the tensor that write_tensor_data fills next (== tensors().size() when all are written).
  size_t current_tensor() const { return current_; }
  // Checks every tensor was written completely, then flushes and closes the file.
  Status finish();
  // The file's bytes after finish() following begin_memory().
  std::vector<uint8_t> take_memory() { return std::move(memory_); }

 private:
  enum class Phase { kDeclaring, kWriting, kFinished };
  Status emit(std::span<const uint8_t> bytes);
  Status emit_zeros(uint64_t n);
  Status start();
  void relayout();
  std::string where() const;

  uint32_t version_;
  uint32_t alignment_ = kDefaultAlignment;
  std::vector<KeyValue> kvs_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> names_;
  Phase phase_ = Phase::kDeclaring;
  std::FILE* file_ = nullptr;
  std::string path_;
  std::string partial_path_;  // where the file is written until finish() renames it to path_
  bool to_memory_ = false;
  std::vector<uint8_t> memory_;
  uint64_t total_items_ = 0;  // array items in all metadata (bounded by kMaxMetadataItems)
  size_t current_ = 0;
  uint64_t written_in_current_ = 0;
};

// A tensor held in memory, for writing whole models at once.
struct TensorData {
  std::string name;
  quant::Type type = quant::Type::F32;
  std::vector<int64_t> ne;  // ne[0] is the row
  std::span<const uint8_t> data;
};

// Whole in-memory models: metadata in order, tensors in order.
Status write_file(const std::string& path, std::span<const KeyValue> metadata, std::span<const TensorData> tensors,
                  uint32_t version = 3);
Expected<std::vector<uint8_t>> write_memory(std::span<const KeyValue> metadata, std::span<const TensorData> tensors,
                                            uint32_t version = 3);
// The tensors of an open file as TensorData (pointing into its mapping), e.g. to re-write or edit a file.
std::vector<TensorData> tensor_data_of(const File& file);

}  // namespace rf::gguf
