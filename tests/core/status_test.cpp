#include <gtest/gtest.h>

#include "core/status.h"

namespace rf {
namespace {

Expected<int> parse_positive(int v) {
  if (v <= 0) return Status::error("expected a positive number, got " + std::to_string(v));
  return v;
}

TEST(Expected, HoldsValueOrError) {
  auto good = parse_positive(3);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 3);
  auto bad = parse_positive(-1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error_message(), "expected a positive number, got -1");
}

TEST(Expected, ValueOfErrorAborts) {
  auto bad = parse_positive(0);
  EXPECT_DEATH((void)bad.value(), "expected a positive number");
}

}  // namespace
}  // namespace rf
