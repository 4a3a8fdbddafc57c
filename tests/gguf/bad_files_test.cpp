// Hand-made bad files: each is built in memory with the writer (or raw bytes) and byte-patched, and the reader must
// reject it with a precise message (what, where, expected, got) and without reading out of bounds.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>

#include "gguf/writer.h"

namespace rf::gguf {
namespace {

using Bytes = std::vector<uint8_t>;

// A small valid file: two tensors with names that occur nowhere else in it.
Bytes good_file() {
  static const Bytes kData(8 * 4 + 2 * 18, 0x11);
  std::vector<KeyValue> kvs = {
      {"general.architecture", std::string("test")}, {"key.one", uint32_t{1}}, {"key.two", uint32_t{2}}};
  std::vector<TensorData> tensors = {
      {"tensor.alpha", quant::Type::F32, {4, 2}, std::span(kData).first(32)},
      {"tensor.beta", quant::Type::Q4_0, {32, 2}, std::span(kData).subspan(32)},
  };
  auto bytes = write_memory(kvs, tensors);
  EXPECT_TRUE(bytes.ok()) << bytes.error_message();
  return *bytes;
}

size_t find(const Bytes& b, std::string_view needle) {
  auto it = std::search(b.begin(), b.end(), needle.begin(), needle.end());
  EXPECT_NE(it, b.end()) << needle;
  return static_cast<size_t>(it - b.begin());
}

template <typename T>
void poke(Bytes& b, size_t at, T v) {
  ASSERT_LE(at + sizeof(T), b.size());
  std::memcpy(b.data() + at, &v, sizeof(T));
}

// Field positions of a tensor info, located by the tensor's name.
struct InfoAt {
  size_t n_dims, dims, type, offset;
};
InfoAt info_of(const Bytes& b, std::string_view name, int n_dims) {
  size_t n = find(b, name) + name.size();
  size_t dims = n + 4;
  size_t type = dims + 8 * static_cast<size_t>(n_dims);
  return {n, dims, type, type + 4};
}

std::string parse_error(const Bytes& b) {
  auto f = File::parse(b, "bad.gguf");
  EXPECT_FALSE(f.ok()) << "a bad file parsed";
  return f.error_message();
}

// Raw header: magic, version, n_tensors, n_kv.
Bytes header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
  Bytes b(24);
  poke(b, 0, kMagic);
  poke(b, 4, version);
  poke(b, 8, n_tensors);
  poke(b, 16, n_kv);
  return b;
}
void append_u32(Bytes& b, uint32_t v) {
  b.resize(b.size() + 4);
  poke(b, b.size() - 4, v);
}
void append_u64(Bytes& b, uint64_t v) {
  b.resize(b.size() + 8);
  poke(b, b.size() - 8, v);
}
void append_str(Bytes& b, std::string_view s) {
  append_u64(b, s.size());
  b.insert(b.end(), s.begin(), s.end());
}

TEST(GgufBadFiles, GoodFileParses) {
  auto f = File::parse(good_file());
  ASSERT_TRUE(f.ok()) << f.error_message();
  EXPECT_EQ((*f)->tensors().size(), 2u);
}

TEST(GgufBadFiles, BadMagic) {
  Bytes b = good_file();
  std::memcpy(b.data(), "GGML", 4);
  EXPECT_EQ(parse_error(b),
            "gguf: bad.gguf: bad magic at offset 0: expected \"GGUF\" (0x46554747), got \"GGML\" (0x4c4d4747); not a "
            "GGUF file");
  EXPECT_EQ(parse_error(Bytes{}),
            "gguf: bad.gguf: truncated header: magic: needs 4 bytes at offset 0 but the file has 0 bytes");
}

TEST(GgufBadFiles, UnknownVersion) {
  Bytes b = good_file();
  poke<uint32_t>(b, 4, 1);
  EXPECT_EQ(parse_error(b),
            "gguf: bad.gguf: unsupported GGUF version 1 at offset 4: expected 2 or 3 (v1 is an obsolete 2023 format; "
            "re-convert the model)");
  poke<uint32_t>(b, 4, 4);
  EXPECT_EQ(parse_error(b), "gguf: bad.gguf: unsupported GGUF version 4 at offset 4: expected 2 or 3");
  poke<uint32_t>(b, 4, 0x03000000);
  EXPECT_NE(parse_error(b).find("(a big-endian GGUF file?)"), std::string::npos);
  poke<uint32_t>(b, 4, 2);
  EXPECT_TRUE(File::parse(b).ok());
}

TEST(GgufBadFiles, TruncatedHeader) {
  Bytes b = good_file();
  b.resize(12);
  EXPECT_EQ(parse_error(b),
            "gguf: bad.gguf: truncated header: tensor count: needs 8 bytes at offset 8 but the file has 12 bytes");
}

TEST(GgufBadFiles, TruncatedMetadata) {
  Bytes b = good_file();
  size_t value_at = find(b, "key.two") + 7 + 4;  // after the key and the value type
  b.resize(value_at + 2);
  EXPECT_EQ(parse_error(b), "gguf: bad.gguf: truncated metadata key #2 'key.two': needs 4 bytes at offset " +
                                std::to_string(value_at) + " but the file has " + std::to_string(b.size()) + " bytes");
}

TEST(GgufBadFiles, TruncatedTensorInfo) {
  Bytes b = good_file();
  InfoAt at = info_of(b, "tensor.beta", 2);
  b.resize(at.type + 1);
  EXPECT_EQ(parse_error(b), "gguf: bad.gguf: truncated tensor info #1 'tensor.beta': type: needs 4 bytes at offset " +
                                std::to_string(at.type) + " but the file has " + std::to_string(b.size()) + " bytes");
}

TEST(GgufBadFiles, TruncatedTensorData) {
  Bytes b = good_file();
  auto f = File::parse(b);
  ASSERT_TRUE(f.ok());
  uint64_t beta_end = (*f)->data_offset() + (*f)->find_tensor("tensor.beta")->offset + 36;
  b.resize(b.size() - 40);
  EXPECT_EQ(parse_error(b), "gguf: bad.gguf: tensor 'tensor.beta': data ends at byte " + std::to_string(beta_end) +
                                " but the file has " + std::to_string(b.size()) + " bytes");
}

TEST(GgufBadFiles, EveryTruncationFailsCleanly) {
  Bytes good = good_file();
  auto f = File::parse(good);
  ASSERT_TRUE(f.ok());
  // Every prefix that cuts into tensor data or anything before it is an error (the tail padding is optional data).
  uint64_t data_end = (*f)->data_offset() + (*f)->tensors().back().offset + (*f)->tensors().back().n_bytes;
  for (size_t n = 0; n < data_end; ++n) {
    Bytes b(good.begin(), good.begin() + static_cast<ptrdiff_t>(n));
    b.shrink_to_fit();  // so ASan sees any read past the prefix
    auto r = File::parse(b, "cut.gguf");
    ASSERT_FALSE(r.ok()) << "prefix of " << n << " bytes parsed";
    EXPECT_EQ(r.error_message().rfind("gguf: cut.gguf: ", 0), 0u);
  }
}

TEST(GgufBadFiles, AbsurdCountsAndLengths) {
  Bytes b = header(3, 0, std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(parse_error(b),
            "gguf: bad.gguf: metadata count 18446744073709551615 at offset 16 is impossible: each "
            "entry needs at least 13 bytes but only 0 bytes remain");
  b = header(3, uint64_t{1} << 40, 0);
  EXPECT_EQ(parse_error(b),
            "gguf: bad.gguf: tensor count 1099511627776 at offset 8 is impossible: each tensor info "
            "needs at least 32 bytes but only 0 bytes remain");
  // A key whose string length exceeds the file.
  b = header(3, 0, 1);
  append_u64(b, uint64_t{1} << 62);
  b.resize(b.size() + 20);
  EXPECT_EQ(parse_error(b),
            "gguf: bad.gguf: truncated metadata key #0: string length 4611686018427387904 at offset "
            "24 exceeds the 20 bytes remaining in the file");
  // An array whose element count cannot fit in the bytes that remain.
  b = header(3, 0, 1);
  append_str(b, "arr");
  append_u32(b, static_cast<uint32_t>(ValueType::ARRAY));
  append_u32(b, static_cast<uint32_t>(ValueType::UINT32));
  append_u64(b, uint64_t{1} << 60);
  append_u32(b, 7);
  EXPECT_EQ(parse_error(b),
            "gguf: bad.gguf: truncated metadata key #0 'arr': array of 1152921504606846976 uint32 at "
            "offset 39 needs at least 4 bytes per item but only 4 bytes remain");
  // A string inside an array.
  b = header(3, 0, 1);
  append_str(b, "strs");
  append_u32(b, static_cast<uint32_t>(ValueType::ARRAY));
  append_u32(b, static_cast<uint32_t>(ValueType::STRING));
  append_u64(b, 1);
  append_u64(b, 1000);
  EXPECT_EQ(parse_error(b),
            "gguf: bad.gguf: truncated metadata key #0 'strs'[0]: string length 1000 at offset 52 "
            "exceeds the 0 bytes remaining in the file");
}

TEST(GgufBadFiles, TooManyArrayItemsInTotal) {
  Bytes b = header(3, 0, 1);
  append_str(b, "huge");
  append_u32(b, static_cast<uint32_t>(ValueType::ARRAY));
  append_u32(b, static_cast<uint32_t>(ValueType::UINT8));
  append_u64(b, kMaxMetadataItems + 1);
  b.resize(b.size() + kMaxMetadataItems + 1, 0);
  EXPECT_EQ(parse_error(b),
            "gguf: bad.gguf: metadata key #0 'huge': array of 16777217 items at offset 40 takes the "
            "metadata past 16777216 array items in total; refusing to load (hostile or corrupt file?)");
}

TEST(GgufBadFiles, NamesInMessagesAreEscapedAndCut) {
  Bytes b = header(3, 0, 1);
  std::string key = "bad\nkey" + std::string(200, 'k');
  append_str(b, key);
  append_u32(b, 99);
  std::string msg = parse_error(b);
  EXPECT_NE(msg.find("'bad\\x0akeykkk"), std::string::npos) << msg;
  EXPECT_NE(msg.find("...(207 bytes)': unknown value type 99"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos);
}

TEST(GgufBadFiles, UnknownValueTypesAndBadBools) {
  Bytes b = header(3, 0, 1);
  append_str(b, "k");
  append_u32(b, 13);
  append_u32(b, 0);
  EXPECT_EQ(parse_error(b), "gguf: bad.gguf: metadata key #0 'k': unknown value type 13 at offset 33: expected 0..12");
  b = header(3, 0, 1);
  append_str(b, "flag");
  append_u32(b, static_cast<uint32_t>(ValueType::BOOL));
  b.push_back(2);
  EXPECT_EQ(parse_error(b), "gguf: bad.gguf: metadata key #0 'flag': bool at offset 40 must be 0 or 1, got 2");
}

TEST(GgufBadFiles, NestingDepthLimit) {
  auto nested = [](int depth) {
    Bytes b = header(3, 0, 1);
    append_str(b, "deep");
    append_u32(b, static_cast<uint32_t>(ValueType::ARRAY));
    for (int i = 1; i < depth; ++i) {
      append_u32(b, static_cast<uint32_t>(ValueType::ARRAY));
      append_u64(b, 1);
    }
    append_u32(b, static_cast<uint32_t>(ValueType::UINT8));
    append_u64(b, 0);
    return b;
  };
  EXPECT_TRUE(File::parse(nested(kMaxArrayNesting)).ok());
  std::string msg = parse_error(nested(kMaxArrayNesting + 1));
  EXPECT_EQ(msg.rfind("gguf: bad.gguf: metadata key #0 'deep'[0][0][0][0][0][0][0][0]: arrays nested deeper than 8 "
                      "levels at offset ",
                      0),
            0u)
      << msg;
  EXPECT_FALSE(File::parse(nested(100000)).ok());  // no stack overflow
}

TEST(GgufBadFiles, DuplicateKeys) {
  Bytes b = good_file();
  std::memcpy(b.data() + find(b, "key.two"), "key.one", 7);
  EXPECT_EQ(parse_error(b), "gguf: bad.gguf: duplicate metadata key 'key.one': entries #1 and #2 both define it");
}

TEST(GgufBadFiles, DuplicateTensorNames) {
  static const Bytes kData(32, 0);
  std::vector<TensorData> tensors = {{"dup.a", quant::Type::F32, {8}, kData}, {"dup.b", quant::Type::F32, {8}, kData}};
  auto written = write_memory({}, tensors);
  ASSERT_TRUE(written.ok());
  Bytes b = *written;
  std::memcpy(b.data() + find(b, "dup.b"), "dup.a", 5);
  EXPECT_EQ(parse_error(b), "gguf: bad.gguf: duplicate tensor name 'dup.a': tensor infos #0 and #1 both define it");
}

TEST(GgufBadFiles, TensorDataOutsideTheFile) {
  Bytes b = good_file();
  InfoAt at = info_of(b, "tensor.beta", 2);
  poke<uint64_t>(b, at.offset, 1 << 20);
  auto f = File::parse(good_file());
  uint64_t end = (*f)->data_offset() + (1 << 20) + 36;
  EXPECT_EQ(parse_error(b), "gguf: bad.gguf: tensor 'tensor.beta': data ends at byte " + std::to_string(end) +
                                " but the file has " + std::to_string(b.size()) + " bytes");
  poke<uint64_t>(b, at.offset, std::numeric_limits<uint64_t>::max() - 31);  // aligned, wraps around when added
  EXPECT_EQ(parse_error(b),
            "gguf: bad.gguf: tensor 'tensor.beta': data at relative offset 18446744073709551584 (36 "
            "bytes) lies beyond any possible file size");
}

TEST(GgufBadFiles, MisalignedOffset) {
  Bytes b = good_file();
  InfoAt at = info_of(b, "tensor.beta", 2);
  poke<uint64_t>(b, at.offset, 40);
  EXPECT_EQ(parse_error(b),
            "gguf: bad.gguf: tensor 'tensor.beta': data offset 40 is not a multiple of the alignment 32");
}

TEST(GgufBadFiles, BadAlignmentValue) {
  for (auto [value, expected] :
       {std::pair<Value, std::string>{uint32_t{48}, "expected a non-zero power of two, got 48"},
        {uint32_t{0}, "expected a non-zero power of two, got 0"},
        {uint64_t{32}, "expected type uint32, got uint64"}}) {
    Bytes b = header(3, 0, 1);
    append_str(b, "general.alignment");
    append_u32(b, static_cast<uint32_t>(value.type()));
    if (value.type() == ValueType::UINT32)
      append_u32(b, std::get<uint32_t>(value.data));
    else
      append_u64(b, std::get<uint64_t>(value.data));
    EXPECT_EQ(parse_error(b), "gguf: bad.gguf: metadata 'general.alignment': " + expected);
  }
}

TEST(GgufBadFiles, TooManyOrTooFewDims) {
  Bytes b = good_file();
  InfoAt at = info_of(b, "tensor.alpha", 2);
  poke<uint32_t>(b, at.n_dims, 5);
  EXPECT_EQ(parse_error(b), "gguf: bad.gguf: tensor 'tensor.alpha': n_dims 5 at offset " + std::to_string(at.n_dims) +
                                ": expected 1..4");
  poke<uint32_t>(b, at.n_dims, 0);
  EXPECT_EQ(parse_error(b), "gguf: bad.gguf: tensor 'tensor.alpha': n_dims 0 at offset " + std::to_string(at.n_dims) +
                                ": expected 1..4");
}

TEST(GgufBadFiles, ZeroAndNegativeDims) {
  Bytes b = good_file();
  InfoAt at = info_of(b, "tensor.alpha", 2);
  poke<uint64_t>(b, at.dims + 8, 0);
  EXPECT_EQ(parse_error(b), "gguf: bad.gguf: tensor 'tensor.alpha': dimension 1 is 0: expected > 0");
  poke<int64_t>(b, at.dims, -4);
  EXPECT_EQ(parse_error(b), "gguf: bad.gguf: tensor 'tensor.alpha': dimension 0 is -4: expected > 0");
}

TEST(GgufBadFiles, ElementCountOverflow) {
  Bytes b = good_file();
  InfoAt at = info_of(b, "tensor.alpha", 2);
  poke<int64_t>(b, at.dims, int64_t{1} << 32);
  poke<int64_t>(b, at.dims + 8, int64_t{1} << 31);
  EXPECT_EQ(parse_error(b),
            "gguf: bad.gguf: tensor 'tensor.alpha': shape [4294967296, 2147483648] has more than 2^63 - 1 elements");
}

TEST(GgufBadFiles, ByteCountOverflow) {
  Bytes b = good_file();
  InfoAt at = info_of(b, "tensor.alpha", 2);
  poke<int64_t>(b, at.dims, int64_t{1} << 31);
  poke<int64_t>(b, at.dims + 8, int64_t{1} << 31);  // 2^62 elements fit, 2^64 F32 bytes do not
  EXPECT_EQ(parse_error(b),
            "gguf: bad.gguf: tensor 'tensor.alpha': shape [2147483648, 2147483648] of type F32 needs "
            "more than 2^63 - 1 bytes");
}

TEST(GgufBadFiles, UnknownTensorType) {
  Bytes b = good_file();
  InfoAt at = info_of(b, "tensor.beta", 2);
  poke<uint32_t>(b, at.type, 99);
  EXPECT_EQ(parse_error(b),
            "gguf: bad.gguf: tensor 'tensor.beta': unknown tensor type id 99 at offset " + std::to_string(at.type));
  poke<uint32_t>(b, at.type, 4);  // a retired ggml id (Q4_2)
  EXPECT_NE(parse_error(b).find("unknown tensor type id 4"), std::string::npos);
}

TEST(GgufBadFiles, RowNotAMultipleOfTheBlockSize) {
  Bytes b = good_file();
  InfoAt at = info_of(b, "tensor.beta", 2);
  poke<int64_t>(b, at.dims, 48);
  EXPECT_EQ(parse_error(b),
            "gguf: bad.gguf: tensor 'tensor.beta': row length 48 is not a multiple of Q4_0's block size 32");
}

}  // namespace
}  // namespace rf::gguf
