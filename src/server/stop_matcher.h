// Stop strings matched across token boundaries. Text goes in piece by piece as tokens decode; what comes out is
// safe to send: any tail that could still grow into a stop string is held back, and a stop string (with
// everything after it) is never emitted.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace rf::server {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);

  struct Output {
    std::string text;      // text that may be sent now
    bool stopped = false;  // a stop string was found; nothing more will be emitted
  };
  // Adds decoded text. After a stop, further pushes return nothing.
  Output push(std::string_view text);
  // The held-back tail, when generation ended without a stop (empty after a stop).
  std::string flush();

  bool stopped() const { return stopped_; }
  size_t emitted_bytes() const { return emitted_; }  // total bytes returned so far
  size_t held_bytes() const { return held_.size(); }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  size_t emitted_ = 0;
  bool stopped_ = false;
};

}  // namespace rf::server
