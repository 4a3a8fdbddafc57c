// CHECK macros for broken internal invariants (programming errors, never input errors).
#pragma once

#include <string>

#include "core/status.h"

#define RF_CHECK(cond)                                                              \
  do {                                                                              \
    if (!(cond)) ::rf::fatal_check_failure(__FILE__, __LINE__, #cond, std::string()); \
  } while (0)

#define RF_CHECK_MSG(cond, msg)                                                 \
  do {                                                                          \
    if (!(cond)) ::rf::fatal_check_failure(__FILE__, __LINE__, #cond, (msg));   \
  } while (0)
