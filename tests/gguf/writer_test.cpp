// Writer: every value type and tensor type round-trips byte-exactly; streaming equals whole-model writing;
// real files re-write to identical bytes; misuse is reported.
#include "gguf/writer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>

#include <unistd.h>

#include "support/shared_data.h"

namespace rf::gguf {
namespace {

// Deep equality with floats compared bit for bit (so NaN payloads and -0.0 count).
bool same_value(const Value& a, const Value& b) {
  if (a.type() != b.type()) return false;
  if (const Array* x = a.array()) {
    const Array* y = b.array();
    if (x->elem_type != y->elem_type || x->items.size() != y->items.size()) return false;
    for (size_t i = 0; i < x->items.size(); ++i) {
      if (!same_value(x->items[i], y->items[i])) return false;
    }
    return true;
  }
  if (const auto* f = std::get_if<float>(&a.data)) return std::memcmp(f, &std::get<float>(b.data), 4) == 0;
  if (const auto* d = std::get_if<double>(&a.data)) return std::memcmp(d, &std::get<double>(b.data), 8) == 0;
  return a.data == b.data;
}

Array array_of(ValueType t, std::vector<Value> items) { return Array{t, std::move(items)}; }

std::vector<KeyValue> every_value_type() {
  float nan_payload;
  uint32_t bits = 0x7fc01234;
  std::memcpy(&nan_payload, &bits, 4);
  return {
      {"u8", uint8_t{255}},
      {"i8", int8_t{-128}},
      {"u16", uint16_t{65535}},
      {"i16", int16_t{-32768}},
      {"u32", uint32_t{4000000000u}},
      {"i32", int32_t{-2000000000}},
      {"f32", 3.25f},
      {"f32.nan", nan_payload},
      {"f32.neg_zero", -0.0f},
      {"bool.true", true},
      {"bool.false", false},
      {"str", std::string("hello \xe2\x9c\x93 world")},
      {"str.empty", std::string()},
      {"str.nul", std::string("a\0b", 3)},
      {"u64", std::numeric_limits<uint64_t>::max()},
      {"i64", std::numeric_limits<int64_t>::min()},
      {"f64", 1e300},
      {"arr.empty", array_of(ValueType::INT32, {})},
      {"arr.empty_strings", array_of(ValueType::STRING, {std::string(), std::string()})},
      {"arr.u8", array_of(ValueType::UINT8, {uint8_t{1}, uint8_t{2}, uint8_t{3}})},
      {"arr.bool", array_of(ValueType::BOOL, {true, false, true})},
      {"arr.f64", array_of(ValueType::FLOAT64, {0.5, -2.0})},
      {"arr.i64", array_of(ValueType::INT64, {int64_t{-1}, int64_t{1} << 40})},
      {"arr.nested",
       array_of(ValueType::ARRAY, {array_of(ValueType::STRING, {std::string("x"), std::string("yz")}),
                                   array_of(ValueType::INT16, {int16_t{-5}}), array_of(ValueType::ARRAY, {})})},
      {"arr.deep", array_of(ValueType::ARRAY, {array_of(ValueType::ARRAY, {array_of(ValueType::FLOAT32, {1.5f})})})},
  };
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

TEST(GgufWriter, EveryValueTypeRoundTripsExactly) {
  auto kvs = every_value_type();
  for (uint32_t version : {2u, 3u}) {
    auto bytes = write_memory(kvs, {}, version);
    ASSERT_TRUE(bytes.ok()) << bytes.error_message();
    auto f = File::parse(*bytes);
    ASSERT_TRUE(f.ok()) << f.error_message();
    EXPECT_EQ((*f)->version(), version);
    ASSERT_EQ((*f)->metadata().size(), kvs.size());
    for (size_t i = 0; i < kvs.size(); ++i) {
      EXPECT_EQ((*f)->metadata()[i].key, kvs[i].key);
      EXPECT_TRUE(same_value((*f)->metadata()[i].value, kvs[i].value)) << kvs[i].key;
    }
    // Re-writing what was read gives the same bytes.
    auto again = write_memory((*f)->metadata(), {}, version);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, *bytes);
  }
}

TEST(GgufWriter, EveryTensorTypeRoundTripsExactly) {
  std::vector<KeyValue> kvs = {{"general.architecture", std::string("test")}};
  std::vector<std::vector<uint8_t>> storage;
  std::vector<TensorData> tensors;
  for (uint32_t id = 0; id < 64; ++id) {
    auto tr = quant::type_traits(id);
    if (!tr) continue;
    TensorData t;
    t.name = "t." + std::string(tr->name);
    t.type = tr->type;
    t.ne = {tr->block_size * 2, 3};
    size_t n = 2 * 3 * tr->block_bytes;
    storage.push_back(random_bytes(n, id));
    tensors.push_back(std::move(t));
  }
  for (size_t i = 0; i < tensors.size(); ++i) tensors[i].data = storage[i];
  ASSERT_GE(tensors.size(), 30u);
  auto bytes = write_memory(kvs, tensors);
  ASSERT_TRUE(bytes.ok()) << bytes.error_message();
  auto f = File::parse(*bytes);
  ASSERT_TRUE(f.ok()) << f.error_message();
  ASSERT_EQ((*f)->tensors().size(), tensors.size());
  EXPECT_EQ((*f)->data_offset() % kDefaultAlignment, 0u);
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorInfo& t = (*f)->tensors()[i];
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.name, tensors[i].name);
    EXPECT_EQ(t.type, tensors[i].type);
    EXPECT_EQ(t.n_dims, 2);
    EXPECT_EQ(t.ne[0], tensors[i].ne[0]);
    EXPECT_EQ(t.ne[1], 3);
    ASSERT_EQ(t.n_bytes, storage[i].size());
    EXPECT_EQ(std::memcmp(t.data, storage[i].data(), t.n_bytes), 0);
  }
}

TEST(GgufWriter, StreamingChunksToAFileEqualsWholeModelWriting) {
  std::vector<KeyValue> kvs = {{"general.alignment", uint32_t{64}}, {"k", std::string("v")}};
  auto a = random_bytes(33 * 4, 1);  // F32 [33]: not a multiple of the alignment, so padding is exercised
  auto b = random_bytes(4 * 34, 2);  // Q8_0 [128]
  std::vector<TensorData> tensors = {{"a", quant::Type::F32, {33}, a}, {"b", quant::Type::Q8_0, {32, 4}, b}};
  auto whole = write_memory(kvs, tensors);
  ASSERT_TRUE(whole.ok()) << whole.error_message();

  std::string path = ::testing::TempDir() + "/gguf_writer_stream.gguf";
  Writer w;
  for (const auto& kv : kvs) ASSERT_TRUE(w.add(kv.key, kv.value).ok());
  ASSERT_TRUE(w.add_tensor("a", quant::Type::F32, {33}).ok());
  ASSERT_TRUE(w.add_tensor("b", quant::Type::Q8_0, {32, 4}).ok());
  EXPECT_EQ(w.alignment(), 64u);
  EXPECT_EQ(w.tensors()[1].offset, 192u);  // 132 bytes padded to 64
  ASSERT_TRUE(w.begin_file(path).ok());
  for (size_t at = 0; at < a.size(); at += 10) {
    size_t n = std::min<size_t>(10, a.size() - at);
    ASSERT_TRUE(w.write_tensor_data({a.data() + at, n}).ok());
  }
  EXPECT_EQ(w.current_tensor(), 1u);
  ASSERT_TRUE(w.write_tensor("b", b).ok());
  ASSERT_TRUE(w.finish().ok());
  EXPECT_EQ(w.file_size(), whole->size());
  EXPECT_EQ(test::read_file_bytes(path), *whole);

  auto f = File::open(path);
  ASSERT_TRUE(f.ok()) << f.error_message();
  EXPECT_EQ((*f)->alignment(), 64u);
  EXPECT_EQ((*f)->data_offset() % 64, 0u);
  EXPECT_EQ(std::memcmp((*f)->find_tensor("b")->data, b.data(), b.size()), 0);
  std::filesystem::remove(path);
}

// The layout of a 7B-shaped model is computed from declarations alone (nothing is held but the header).
TEST(GgufWriter, LaysOutASevenBillionParameterShapeWithoutItsData) {
  Writer w;
  ASSERT_TRUE(w.add("general.architecture", std::string("llama")).ok());
  const int64_t n_embd = 4096, n_ff = 11008, n_vocab = 32000;
  ASSERT_TRUE(w.add_tensor("token_embd.weight", quant::Type::Q4_K, {n_embd, n_vocab}).ok());
  for (int l = 0; l < 32; ++l) {
    std::string p = "blk." + std::to_string(l) + ".";
    for (const char* n : {"attn_q", "attn_k", "attn_v", "attn_output"}) {
      ASSERT_TRUE(w.add_tensor(p + n + ".weight", quant::Type::Q4_K, {n_embd, n_embd}).ok());
    }
    ASSERT_TRUE(w.add_tensor(p + "ffn_gate.weight", quant::Type::Q4_K, {n_embd, n_ff}).ok());
    ASSERT_TRUE(w.add_tensor(p + "ffn_up.weight", quant::Type::Q4_K, {n_embd, n_ff}).ok());
    ASSERT_TRUE(w.add_tensor(p + "ffn_down.weight", quant::Type::Q6_K, {n_ff, n_embd}).ok());
    ASSERT_TRUE(w.add_tensor(p + "attn_norm.weight", quant::Type::F32, {n_embd}).ok());
    ASSERT_TRUE(w.add_tensor(p + "ffn_norm.weight", quant::Type::F32, {n_embd}).ok());
  }
  ASSERT_TRUE(w.add_tensor("output.weight", quant::Type::Q6_K, {n_embd, n_vocab}).ok());
  uint64_t expected_end = 0;
  for (const TensorInfo& t : w.tensors()) {
    EXPECT_EQ(t.offset % w.alignment(), 0u);
    EXPECT_GE(t.offset, expected_end);
    expected_end = (t.offset + t.n_bytes + 31) / 32 * 32;
  }
  uint64_t header = w.header_bytes().size();
  EXPECT_EQ(header % 32, 0u);
  EXPECT_EQ(w.file_size(), header + expected_end);
  EXPECT_GT(w.file_size(), uint64_t{3800} << 20);  // about 3.9 GB at ~4.5 bits per weight
}

TEST(GgufWriter, MisuseIsReported) {
  Writer w;
  ASSERT_TRUE(w.add("k", uint32_t{1}).ok());
  EXPECT_NE(w.add("k", uint32_t{2}).message().find("duplicate metadata key 'k'"), std::string::npos);
  EXPECT_NE(w.add("general.alignment", uint32_t{48}).message().find("power of two"), std::string::npos);
  EXPECT_NE(w.add("mixed", Array{ValueType::INT32, {int32_t{1}, 2.0f}}).message().find("holds a float32 at index 1"),
            std::string::npos);
  Value deep = int32_t{0};
  for (int i = 0; i <= kMaxArrayNesting; ++i) deep = Array{deep.type(), {deep}};
  EXPECT_NE(w.add("deep", deep).message().find("nested deeper"), std::string::npos);
  ASSERT_TRUE(w.add_tensor("x", quant::Type::Q4_0, {64}).ok());
  EXPECT_NE(w.add_tensor("x", quant::Type::F32, {1}).message().find("duplicate tensor name 'x'"), std::string::npos);
  EXPECT_NE(w.add_tensor("y", quant::Type::Q4_0, {33}).message().find("not a multiple of Q4_0's block size 32"),
            std::string::npos);
  EXPECT_NE(w.add_tensor("z", quant::Type::F32, {1, 0}).message().find("dimension 1 is 0"), std::string::npos);
  EXPECT_NE(w.add_tensor("w", quant::Type::F32, {1, 1, 1, 1, 1}).message().find("expected 1..4"), std::string::npos);
  ASSERT_TRUE(w.add_tensor("y", quant::Type::F32, {2}).ok());
  ASSERT_TRUE(w.begin_memory().ok());
  EXPECT_FALSE(w.add("late", uint8_t{1}).ok());
  std::vector<uint8_t> q(20);
  EXPECT_NE(w.write_tensor("y", q).message().find("out of order: expected 'x'"), std::string::npos);
  ASSERT_TRUE(w.write_tensor_data(q).ok());
  EXPECT_NE(w.write_tensor_data(q).message().find("tensor 'x': 40 bytes written but it holds 36"), std::string::npos);
  EXPECT_NE(w.finish().message().find("finished after 0 of 2 tensors ('x' has 20 of 36 bytes)"), std::string::npos);
}

// Re-writing a file through reader and writer reproduces it byte for byte when its layout is canonical
// (every file in ../shared is: tensors packed in order, padded to the alignment).
void expect_rewrites_identically(const std::string& path) {
  SCOPED_TRACE(path);
  auto f = File::open(path);
  ASSERT_TRUE(f.ok()) << f.error_message();
  auto bytes = write_memory((*f)->metadata(), tensor_data_of(**f), (*f)->version());
  ASSERT_TRUE(bytes.ok()) << bytes.error_message();
  auto original = test::read_file_bytes(path);
  ASSERT_EQ(bytes->size(), original.size());
  EXPECT_TRUE(*bytes == original);
}

TEST(GgufWriter, RealModelFilesRewriteByteForByte) {
  RF_REQUIRE_SHARED(dir, "models");
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".gguf") files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  bool slow_skip = std::getenv("ROCMFORGE_SLOW_TESTS_SKIP") != nullptr;
  for (const auto& path : files) {
    if (slow_skip && path.find("stories260K") == std::string::npos && path.find("Q4_K_M") == std::string::npos) {
      continue;  // under sanitizers: the real model plus the mixed-type files
    }
    expect_rewrites_identically(path);
  }
}

TEST(GgufWriter, VocabOnlyFileRewritesByteForByte) {
  RF_REQUIRE_SHARED(path, "tokenizer/ggml-vocab-llama-spm.gguf");
  expect_rewrites_identically(path);
}

TEST(GgufGetters, ConvertIntegersThatFitAndReportMismatches) {
  std::vector<KeyValue> kvs = {
      {"u32", uint32_t{300}},
      {"neg", int32_t{-1}},
      {"s", std::string("text")},
      {"f", 0.5f},
      {"ids", Array{ValueType::UINT8, {uint8_t{1}, uint8_t{2}}}},
      {"big", Array{ValueType::INT64, {int64_t{1}, int64_t{1} << 40}}},
      {"strs", Array{ValueType::STRING, {std::string("a")}}},
  };
  auto bytes = write_memory(kvs, {});
  ASSERT_TRUE(bytes.ok());
  auto f = File::parse(*bytes, "mem.gguf");
  ASSERT_TRUE(f.ok()) << f.error_message();
  const File& file = **f;
  EXPECT_EQ(file.get<uint64_t>("u32").value(), 300u);
  EXPECT_EQ(file.get<int16_t>("u32").value(), 300);
  EXPECT_EQ(file.get<double>("f").value(), 0.5);
  EXPECT_EQ(file.get<std::vector<int32_t>>("ids").value(), (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(file.get<std::vector<int64_t>>("big").value()[1], int64_t{1} << 40);
  EXPECT_EQ(file.get_or<uint32_t>("absent", 7).value(), 7u);

  EXPECT_EQ(file.get<uint8_t>("u32").error_message(),
            "gguf: mem.gguf: metadata key 'u32': expected an integer fitting uint8, got uint32 300");
  EXPECT_EQ(file.get<uint32_t>("neg").error_message(),
            "gguf: mem.gguf: metadata key 'neg': expected an integer fitting uint32, got int32 -1");
  EXPECT_EQ(file.get<uint32_t>("s").error_message(),
            "gguf: mem.gguf: metadata key 's': expected an integer fitting uint32, got string");
  EXPECT_EQ(file.get<std::string>("missing").error_message(),
            "gguf: mem.gguf: metadata key 'missing' not found (expected string)");
  EXPECT_EQ(file.get<std::vector<int32_t>>("big").error_message(),
            "gguf: mem.gguf: metadata key 'big': expected array of an integer fitting int32, got array[2] of int64 "
            "(item 1 is int64 1099511627776)");
  EXPECT_EQ(
      file.get<std::vector<float>>("strs").error_message(),
      "gguf: mem.gguf: metadata key 'strs': expected array of float32, got array[1] of string (item 0 is string)");
  ASSERT_TRUE(file.get_array("strs").ok());
  EXPECT_EQ(file.get_array("strs").value()->items.size(), 1u);
  EXPECT_EQ(file.get_array("s").error_message(), "gguf: mem.gguf: metadata key 's': expected array, got string");
  EXPECT_FALSE(file.get<float>("u32").ok());
  EXPECT_FALSE(file.get_or<std::string>("u32", "x").ok());
}

TEST(GgufWriter, ReplacingAMappedFileLeavesTheOldMappingIntactAndFailuresLeaveNoFile) {
  const std::string path = ::testing::TempDir() + "rf_writer_replace_" + std::to_string(::getpid()) + ".gguf";
  auto write_one = [&](float value) {
    Writer w;
    EXPECT_TRUE(w.add_tensor("t", quant::Type::F32, {64}).ok());
    EXPECT_TRUE(w.begin_file(path).ok());
    std::vector<float> data(64, value);
    EXPECT_TRUE(w.write_tensor_data({reinterpret_cast<const uint8_t*>(data.data()), data.size() * 4}).ok());
    EXPECT_TRUE(w.finish().ok());
  };
  write_one(1.0f);
  auto old_file = File::open(path);
  ASSERT_TRUE(old_file.ok());
  write_one(2.0f);  // a reader that still maps the old file must not see it truncated (no SIGBUS, old bytes)
  float old_value = 0.0f;
  std::memcpy(&old_value, (*old_file)->find_tensor("t")->data + 63 * 4, 4);
  EXPECT_EQ(old_value, 1.0f);
  auto new_file = File::open(path);
  ASSERT_TRUE(new_file.ok());
  std::memcpy(&old_value, (*new_file)->find_tensor("t")->data, 4);
  EXPECT_EQ(old_value, 2.0f);

  const std::string unfinished = path + ".unfinished";
  {
    Writer w;
    ASSERT_TRUE(w.add_tensor("t", quant::Type::F32, {64}).ok());
    ASSERT_TRUE(w.begin_file(unfinished).ok());
  }  // abandoned before finish()
  EXPECT_FALSE(std::filesystem::exists(unfinished));
  for (const auto& e : std::filesystem::directory_iterator(::testing::TempDir())) {
    EXPECT_EQ(e.path().string().find(unfinished + ".partial"), std::string::npos) << e.path();
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace rf::gguf
