// libFuzzer target: File::parse on arbitrary bytes, then every metadata value and tensor is walked, and whatever
// parses must re-write through the writer into a file that parses to the same bytes again.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "gguf/writer.h"

namespace {

volatile uint64_t g_sink;  // keeps reads from being optimized away

void walk(const rf::gguf::Value& v) {
  g_sink = g_sink + rf::gguf::type_description(v).size() + rf::gguf::to_display_string(v, 3).size();
  if (const auto* a = v.array()) {
    for (const auto& item : a->items) walk(item);
  }
}

template <typename T>
void try_get(const rf::gguf::File& f, const std::string& key) {
  auto r = f.get<T>(key);
  g_sink = g_sink + (r.ok() ? 1 : r.error_message().size());
}

void check(bool cond) {
  if (!cond) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parsed = rf::gguf::File::parse(std::span<const uint8_t>(data, size), "fuzz");
  if (!parsed.ok()) {
    check(!parsed.error_message().empty());
    return 0;
  }
  const rf::gguf::File& f = **parsed;
  for (const auto& kv : f.metadata()) {
    walk(kv.value);
    check(f.find(kv.key) == &kv.value);
    try_get<bool>(f, kv.key);
    try_get<float>(f, kv.key);
    try_get<double>(f, kv.key);
    try_get<std::string>(f, kv.key);
    try_get<uint8_t>(f, kv.key);
    try_get<int32_t>(f, kv.key);
    try_get<uint64_t>(f, kv.key);
    try_get<int64_t>(f, kv.key);
    try_get<std::vector<std::string>>(f, kv.key);
    try_get<std::vector<float>>(f, kv.key);
    try_get<std::vector<int32_t>>(f, kv.key);
    try_get<std::vector<uint32_t>>(f, kv.key);
    try_get<std::vector<int64_t>>(f, kv.key);
  }
  for (const auto& t : f.tensors()) {
    check(f.find_tensor(t.name) == &t);
    check(t.data != nullptr && t.n_bytes > 0);
    check(t.data >= data && t.data + t.n_bytes <= data + size);
    g_sink = g_sink + t.data[0] + t.data[t.n_bytes - 1];  // ASan checks both ends lie inside the input
  }
  // Anything that parses re-writes canonically, and the canonical form is a fixed point.
  auto once = rf::gguf::write_memory(f.metadata(), rf::gguf::tensor_data_of(f), f.version());
  check(once.ok());
  auto reparsed = rf::gguf::File::parse(*once, "rewritten");
  check(reparsed.ok());
  auto twice = rf::gguf::write_memory((*reparsed)->metadata(), rf::gguf::tensor_data_of(**reparsed), f.version());
  check(twice.ok() && *twice == *once);
  return 0;
}
