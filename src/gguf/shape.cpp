#include "gguf/shape.h"

#include <fmt/format.h>

#include <limits>

namespace rf::gguf {

std::string display_name(std::string_view name) {
  constexpr size_t kMaxShown = 96;
  std::string out;
  for (size_t i = 0; i < name.size() && i < kMaxShown; ++i) {
    auto c = static_cast<unsigned char>(name[i]);
    if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += name[i];
    }
  }
  if (name.size() > kMaxShown) out += fmt::format("...({} bytes)", name.size());
  return out;
}

std::string shape_string(const TensorInfo& t) {
  std::string s = "[";
  for (int i = 0; i < t.n_dims && i < kMaxDims; ++i) s += fmt::format("{}{}", i ? ", " : "", t.ne[i]);
  return s + "]";
}

Status check_tensor_shape(TensorInfo& t) {
  if (t.n_dims < 1 || t.n_dims > kMaxDims) {
    return Status::error(
        fmt::format("tensor '{}': n_dims is {}: expected 1..{}", display_name(t.name), t.n_dims, kMaxDims));
  }
  for (int d = t.n_dims; d < kMaxDims; ++d) t.ne[d] = 1;
  constexpr auto kMaxElements = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t n = 1;
  for (int d = 0; d < t.n_dims; ++d) {
    if (t.ne[d] <= 0) {
      return Status::error(
          fmt::format("tensor '{}': dimension {} is {}: expected > 0", display_name(t.name), d, t.ne[d]));
    }
    auto dim = static_cast<uint64_t>(t.ne[d]);
    if (n > kMaxElements / dim) {
      return Status::error(
          fmt::format("tensor '{}': shape {} has more than 2^63 - 1 elements", display_name(t.name), shape_string(t)));
    }
    n *= dim;
  }
  const quant::TypeTraits& traits = quant::traits(t.type);
  if (t.ne[0] % traits.block_size != 0) {
    return Status::error(fmt::format("tensor '{}': row length {} is not a multiple of {}'s block size {}",
                                     display_name(t.name), t.ne[0], traits.name, traits.block_size));
  }
  uint64_t blocks = n / static_cast<uint64_t>(traits.block_size);
  // Bytes must fit int64 too, so that offset arithmetic in callers cannot overflow signed types.
  if (blocks > kMaxElements / traits.block_bytes) {
    return Status::error(fmt::format("tensor '{}': shape {} of type {} needs more than 2^63 - 1 bytes",
                                     display_name(t.name), shape_string(t), traits.name));
  }
  t.n_bytes = static_cast<size_t>(blocks * traits.block_bytes);
  return ok_status();
}

}  // namespace rf::gguf
