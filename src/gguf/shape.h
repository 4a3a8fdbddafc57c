// Shape rules shared by the reader and the writer.
#pragma once

#include <string>

#include "core/status.h"
#include "gguf/gguf.h"

namespace rf::gguf {

// Checks t.n_dims (1..kMaxDims), every dimension > 0, the element and byte counts for overflow and that the row
// length is a multiple of the type's block size; sets t.n_bytes. Messages start with "tensor '<name>': ".
Status check_tensor_shape(TensorInfo& t);

// A name from a file as messages show it: control bytes escaped as \xNN, names over 96 bytes cut.
std::string display_name(std::string_view name);

// "[64, 512]"
std::string shape_string(const TensorInfo& t);

}  // namespace rf::gguf
