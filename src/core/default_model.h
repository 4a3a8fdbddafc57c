// Where the built-in model lives: models/default.gguf shipped in the repository.
#pragma once

#include <string>

namespace rf {

// $ROCMFORGE_DEFAULT_MODEL, else models/default.gguf next to the source tree the binary was built from,
// else models/default.gguf relative to the executable (bin/../../models) or the working directory.
std::string default_model_path();

}  // namespace rf
