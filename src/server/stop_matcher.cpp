#include "server/stop_matcher.h"

#include <algorithm>

namespace rf::server {

StopMatcher::StopMatcher(std::vector<std::string> stops) {
  for (auto& s : stops) {
    if (!s.empty()) stops_.push_back(std::move(s));
  }
}

StopMatcher::Output StopMatcher::push(std::string_view text) {
  Output out;
  if (stopped_) return out;
  held_.append(text);
  // Earliest stop occurrence in the buffer. The held part never contains an earlier emitted start (a tail that
  // could begin a stop string is always held), so a match can only start inside held_.
  size_t first = std::string::npos;
  for (const auto& s : stops_) first = std::min(first, held_.find(s));
  if (first != std::string::npos) {
    out.text = held_.substr(0, first);
    out.stopped = stopped_ = true;
    held_.clear();
    emitted_ += out.text.size();
    return out;
  }
  // Hold the longest tail that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const auto& s : stops_) {
    const size_t max_len = std::min(s.size() - 1, held_.size());
    for (size_t len = max_len; len > hold; --len) {
      if (held_.compare(held_.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  out.text = held_.substr(0, held_.size() - hold);
  held_.erase(0, held_.size() - hold);
  emitted_ += out.text.size();
  return out;
}

std::string StopMatcher::flush() {
  std::string rest;
  rest.swap(held_);
  emitted_ += rest.size();
  return rest;
}

}  // namespace rf::server
