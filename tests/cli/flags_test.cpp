// Command-line values the parser cannot take end in one clear error and exit status 1, never an abort.
#include <gtest/gtest.h>

#include <string>

#include "cli_run.h"

namespace rf::cli {
namespace {

using rf::test::run_cli;

TEST(CliFlags, BadFlagValuesAreOneClearErrorNotAnAbort) {
  for (const std::string args : {"serve --no-prefix-cache=maybe", "serve --no-batch-invariant=maybe",
                                 "inspect --json=maybe", "bench --json=maybe --kernels"}) {
    const auto r = run_cli(args);
    EXPECT_EQ(r.status, 1) << args << ": " << r.err;
    EXPECT_NE(r.err.find("Could not convert"), std::string::npos) << args << ": " << r.err;
  }
}

TEST(CliFlags, NegativeServeFlagsParse) {
  // --help after the flags: parsing succeeds and prints the serve help, with the flags named.
  const auto r = run_cli("serve --no-prefix-cache --no-batch-invariant=true --help");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("--no-prefix-cache"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--no-batch-invariant"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace rf::cli
