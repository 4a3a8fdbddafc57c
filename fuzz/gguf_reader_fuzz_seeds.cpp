// Writes the seed corpus of gguf_reader_fuzz into a folder: small valid files made by the project's own writer
// (every value type, nested arrays, several tensor types, v2 and v3, custom alignment, vocab-only).
#include <cstdio>
#include <string>
#include <vector>

#include "gguf/writer.h"

using rf::gguf::Array;
using rf::gguf::KeyValue;
using rf::gguf::TensorData;
using rf::gguf::Value;
using rf::gguf::ValueType;
using rf::quant::Type;

namespace {

bool save(const std::string& dir, const std::string& name, std::span<const KeyValue> kvs,
          std::span<const TensorData> tensors, uint32_t version = 3) {
  auto bytes = rf::gguf::write_memory(kvs, tensors, version);
  if (!bytes.ok()) {
    std::fprintf(stderr, "seed %s: %s\n", name.c_str(), bytes.error_message().c_str());
    return false;
  }
  std::string path = dir + "/" + name + ".gguf";
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  bool ok = std::fwrite(bytes->data(), 1, bytes->size(), f) == bytes->size();
  return std::fclose(f) == 0 && ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  std::vector<KeyValue> every = {
      {"general.architecture", std::string("llama")},
      {"u8", uint8_t{7}},
      {"i8", int8_t{-7}},
      {"u16", uint16_t{700}},
      {"i16", int16_t{-700}},
      {"llama.block_count", uint32_t{2}},
      {"i32", int32_t{-70000}},
      {"f32", 1.5f},
      {"b", true},
      {"u64", uint64_t{1} << 40},
      {"i64", int64_t{-1}},
      {"f64", 2.5},
      {"tokenizer.ggml.tokens", Array{ValueType::STRING, {std::string("a"), std::string(""), std::string("<s>")}}},
      {"tokenizer.ggml.scores", Array{ValueType::FLOAT32, {0.f, -1.f, 2.f}}},
      {"nested", Array{ValueType::ARRAY, {Array{ValueType::INT32, {int32_t{1}}}, Array{ValueType::BOOL, {}}}}},
  };
  std::vector<uint8_t> bytes(4 * 34, 0x5a);
  std::vector<TensorData> tensors = {
      {"token_embd.weight", Type::F32, {4, 2}, std::span(bytes).first(32)},
      {"blk.0.attn_q.weight", Type::Q8_0, {32, 2}, std::span(bytes).first(68)},
      {"blk.0.ffn.weight", Type::F16, {2, 2, 2, 2}, std::span(bytes).first(32)},
      {"output.weight", Type::Q4_K, {256}, std::span(bytes).first(144)},
  };
  std::vector<uint8_t> q4k(144, 0x33);
  tensors[3].data = q4k;
  std::vector<KeyValue> aligned = {{"general.alignment", uint32_t{64}}};
  bool ok = save(dir, "every_value_type", every, {}) && save(dir, "tensors_v3", every, tensors) &&
            save(dir, "tensors_v2", aligned, std::span(tensors).first(2), 2) && save(dir, "empty", {}, {}) &&
            save(dir, "one_tensor", {}, std::span(tensors).first(1));
  return ok ? 0 : 1;
}
