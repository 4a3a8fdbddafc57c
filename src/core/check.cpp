#include "core/check.h"

#include <cstdio>
#include <cstdlib>

namespace rf {

void fatal_check_failure(const char* file, int line, const char* expr, const std::string& message) {
  std::fprintf(stderr, "rocmforge: internal error at %s:%d: CHECK(%s) failed%s%s\n", file, line, expr,
               message.empty() ? "" : ": ", message.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace rf
