// Runs the rocmforge binary and captures its exit status, stdout and stderr.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace rf::test {

struct CliResult {
  int status = -1;
  std::string out;
  std::string err;
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline CliResult run_cli(const std::string& args) {
  const std::string base = ::testing::TempDir() + "cli_" + std::to_string(::getpid());
  const std::string cmd = std::string(ROCMFORGE_BIN) + " " + args + " >" + base + ".out 2>" + base + ".err";
  CliResult r;
  const int raw = std::system(cmd.c_str());
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.out = slurp(base + ".out");
  r.err = slurp(base + ".err");
  return r;
}

}  // namespace rf::test

#include <spawn.h>
#include <sys/resource.h>

extern char** environ;

namespace rf::test {

// Runs the rocmforge binary with argv (no shell) and returns its exit status and peak resident set in bytes.
struct PeakRun {
  int status = -1;
  long peak_rss_bytes = 0;
};

inline PeakRun run_cli_peak_rss(std::vector<std::string> args) {
  args.insert(args.begin(), ROCMFORGE_BIN);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  PeakRun r;
  pid_t pid = 0;
  if (posix_spawn(&pid, ROCMFORGE_BIN, nullptr, nullptr, argv.data(), environ) != 0) return r;
  int raw = 0;
  struct rusage usage {};
  if (wait4(pid, &raw, 0, &usage) != pid) return r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.peak_rss_bytes = usage.ru_maxrss * 1024L;
  return r;
}

}  // namespace rf::test
