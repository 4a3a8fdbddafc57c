// The real `rocmforge serve` process: raw SSE framing seen by curl, the official `openai` npm client (installed at
// test time into the build folder; the test SKIPs when node/npm or the package are unavailable), and graceful
// shutdown on SIGTERM/SIGINT with exit status 0.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "server_fixture.h"

namespace rf::server::test {
namespace {

using namespace std::chrono_literals;

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string run_capture(const std::string& cmd, int* status) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    *status = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = pclose(p);
  *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

bool have(const char* tool) {
  int st = 0;
  run_capture(std::string("command -v ") + tool + " >/dev/null 2>&1", &st);
  return st == 0;
}

class ServeProcess {
 public:
  explicit ServeProcess(std::vector<std::string> extra = {}, int ctx_size = 1024) {
    log_ = ::testing::TempDir() + "/rf_serve_" + std::to_string(getpid()) + "_" + std::to_string(counter_++) + ".log";
    std::vector<std::string> args = {RF_ROCMFORGE_BIN, "serve", "-m", synth_model_path(), "--port", "0", "--alias",
                                     "synth",          "-t",    "1"};
    args.push_back("--ctx-size");
    args.push_back(std::to_string(ctx_size));
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = fork();
    if (pid_ == 0) {
      FILE* f = std::freopen(log_.c_str(), "w", stderr);
      (void)f;
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    const std::regex listening("listening on http://127\\.0\\.0\\.1:([0-9]+)");
    for (int i = 0; i < 600 && port_ == 0; ++i) {
      std::this_thread::sleep_for(50ms);
      const std::string text = read_all(log_);
      std::smatch m;
      if (text.find("ready") != std::string::npos && std::regex_search(text, m, listening)) port_ = std::stoi(m[1]);
    }
  }
  ~ServeProcess() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    std::remove(log_.c_str());
  }
  int port() const { return port_; }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // Sends `sig` and waits (up to timeout) for the exit status; -1 on timeout or abnormal end.
  int signal_and_wait(int sig, std::chrono::milliseconds timeout) {
    kill(pid_, sig);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int st = 0;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        reaped_ = true;
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
      }
      std::this_thread::sleep_for(20ms);
    }
    return -1;
  }
  std::string log() const { return read_all(log_); }

 private:
  static inline int counter_ = 0;
  pid_t pid_ = -1;
  int port_ = 0;
  bool reaped_ = false;
  std::string log_;
};

TEST(ServeProcess, CurlSeesServerSentEventsFraming) {
  if (!have("curl")) GTEST_SKIP() << "curl not installed";
  ServeProcess sp;
  ASSERT_GT(sp.port(), 0) << sp.log();
  int st = 0;
  const std::string out = run_capture(
      "curl -sS -N -i -H 'Content-Type: application/json' -d '{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
      "\"max_tokens\":6,\"stream\":true}' " +
          sp.base() + "/v1/chat/completions",
      &st);
  ASSERT_EQ(st, 0) << out;
  const size_t body_at = out.find("\r\n\r\n");
  ASSERT_NE(body_at, std::string::npos);
  const std::string head = out.substr(0, body_at), body = out.substr(body_at + 4);
  EXPECT_NE(head.find("HTTP/1.1 200"), std::string::npos) << head;
  EXPECT_NE(head.find("Content-Type: text/event-stream"), std::string::npos) << head;
  EXPECT_NE(head.find("Transfer-Encoding: chunked"), std::string::npos) << head;
  const auto events = sse_payloads(body);
  ASSERT_GE(events.size(), 3u) << body;
  EXPECT_EQ(events.back(), "[DONE]");
  EXPECT_EQ(body.substr(body.size() - 14), "data: [DONE]\n\n");
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const auto j = nlohmann::json::parse(events[i]);
    EXPECT_EQ(j["object"], "chat.completion.chunk");
  }
  EXPECT_EQ(sp.signal_and_wait(SIGINT, 10s), 0) << sp.log();
}

TEST(ServeProcess, OfficialOpenAiNodeClient) {
  if (!have("node") || !have("npm")) GTEST_SKIP() << "node/npm not installed";
  const std::string dir = std::string(RF_BUILD_DIR) + "/npm-openai";
  int st = 0;
  if (read_all(dir + "/node_modules/openai/package.json").empty()) {
    const std::string log = run_capture("mkdir -p '" + dir + "' && cd '" + dir +
                                            "' && timeout 90 npm install --no-audit --no-fund --silent openai@4 2>&1",
                                        &st);
    if (st != 0) GTEST_SKIP() << "npm could not install the openai package (offline?): " << log.substr(0, 400);
  }
  run_capture("cp '" + std::string(RF_SOURCE_DIR) + "/tests/server/openai_client_test.mjs' '" + dir + "/'", &st);
  ASSERT_EQ(st, 0);
  ServeProcess sp({"--api-key", "k3y"});
  ASSERT_GT(sp.port(), 0) << sp.log();
  const std::string out = run_capture(
      "cd '" + dir + "' && timeout 120 node openai_client_test.mjs " + sp.base() + "/v1 synth k3y 2>&1", &st);
  EXPECT_EQ(st, 0) << out;
  EXPECT_NE(out.find("all checks passed"), std::string::npos) << out;
  EXPECT_EQ(sp.signal_and_wait(SIGTERM, 10s), 0) << sp.log();
}

TEST(ServeProcess, SigtermEndsRunningStreamsProperlyAndExitsZero) {
  if (!have("curl")) GTEST_SKIP() << "curl not installed";
  // Requests the tiny model cannot finish while the test looks: 1000 tokens in a 1024 context took it well under
  // 100 ms, so a request could end (200, "length") before the SIGTERM's grace ran out, or before the other one
  // started. 30000 tokens in a 32k context take it many seconds.
  ServeProcess sp({"--shutdown-grace", "0.05", "--parallel", "2"}, 1 << 15);
  ASSERT_GT(sp.port(), 0) << sp.log();
  // A stream and a non-streaming request far longer than the grace period (30000 tokens, ignore_eos); curl writes
  // what it got to files, then its status and exit code.
  const std::string base = ::testing::TempDir() + "/rf_sigterm_" + std::to_string(getpid());
  const std::string stream_file = base + "_stream.txt", whole_file = base + "_whole.txt";
  auto curl = [&](const std::string& body, const std::string& out) {
    return "(curl -sS -N -H 'Content-Type: application/json' -w '\\nHTTP %{http_code}\\n' -d '" + body + "' " +
           sp.base() + "/v1/completions > '" + out + ".part' 2>&1; echo \"exit $?\" >> '" + out + ".part'; mv '" + out +
           ".part' '" + out + "') &";
  };
  const std::string cmd = curl(R"({"prompt":"go","max_tokens":30000,"ignore_eos":true,"stream":true})", stream_file) +
                          " " + curl(R"({"prompt":"go on","max_tokens":30000,"ignore_eos":true})", whole_file);
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  // Signal once both generate (a request arriving after the shutdown would find the listener closed).
  httplib::Client probe("127.0.0.1", sp.port());
  bool both = false;
  for (int i = 0; i < 1000 && !both; ++i) {
    auto m = probe.Get("/metrics");
    both = m && m->body.find("\nrocmforge_running_sequences 2\n") != std::string::npos;
    if (!both) std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(both) << sp.log() << read_all(stream_file).substr(0, 2000) << read_all(whole_file);
  EXPECT_EQ(sp.signal_and_wait(SIGTERM, 15s), 0) << sp.log();
  // curl has written everything once the files are renamed (poll: the exit is already known).
  for (int i = 0; i < 500 && (read_all(stream_file).empty() || read_all(whole_file).empty()); ++i)
    std::this_thread::sleep_for(20ms);
  const std::string streamed = read_all(stream_file), whole = read_all(whole_file);
  std::remove(stream_file.c_str());
  std::remove(whole_file.c_str());
  // Both transfers completed (curl exit 0: the chunked stream was properly terminated).
  EXPECT_NE(streamed.find("\nHTTP 200\nexit 0"), std::string::npos) << streamed.substr(0, 300);
  const std::string body = streamed.substr(0, streamed.find("\nHTTP "));
  ASSERT_GE(body.size(), 14u) << body;
  EXPECT_EQ(body.substr(body.size() - 14), "data: [DONE]\n\n")
      << body.substr(body.size() > 300 ? body.size() - 300 : 0);
  // Cut off: a finish chunk ("stop"), then the error event, then [DONE].
  const size_t fin = body.rfind("\"finish_reason\":\"stop\""), err = body.rfind("server_shutting_down");
  EXPECT_NE(fin, std::string::npos) << body.substr(body.size() > 600 ? body.size() - 600 : 0);
  EXPECT_NE(err, std::string::npos) << body.substr(body.size() > 600 ? body.size() - 600 : 0);
  EXPECT_LT(fin, err);
  EXPECT_NE(whole.find("\nHTTP 503\nexit 0"), std::string::npos) << whole;
  EXPECT_NE(whole.find("server_shutting_down"), std::string::npos) << whole;
  EXPECT_NE(sp.log().find("SIGTERM"), std::string::npos);
}

TEST(ServeProcess, SigintWhenIdleExitsZeroQuickly) {
  ServeProcess sp;
  ASSERT_GT(sp.port(), 0) << sp.log();
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(sp.signal_and_wait(SIGINT, 10s), 0) << sp.log();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

}  // namespace
}  // namespace rf::server::test
