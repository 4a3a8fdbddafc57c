#include "server/metrics.h"

#include <gtest/gtest.h>

#include <sstream>

namespace rf::server {
namespace {

bool has_line(const std::string& text, const std::string& line) {
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (l == line) return true;
  }
  return false;
}

TEST(Metrics, HistogramBucketsAreCumulativeWithInf) {
  Histogram h({0.1, 1.0});
  h.observe(0.05);
  h.observe(0.5);
  h.observe(0.5);
  h.observe(7);
  const auto s = h.render("x");
  EXPECT_TRUE(has_line(s, "x_bucket{le=\"0.1\"} 1"));
  EXPECT_TRUE(has_line(s, "x_bucket{le=\"1\"} 3"));
  EXPECT_TRUE(has_line(s, "x_bucket{le=\"+Inf\"} 4"));
  EXPECT_TRUE(has_line(s, "x_sum 8.05"));
  EXPECT_TRUE(has_line(s, "x_count 4"));
}

TEST(Metrics, RendersEveryFamilyWithHelpAndType) {
  Metrics m;
  m.count_request("/v1/chat/completions", 200);
  m.count_request("/v1/chat/completions", 200);
  m.count_request("/v1/completions", 400);
  m.add_prompt_tokens(10, 4);
  m.add_generated_tokens(7);
  m.observe_time_to_first_token(0.02);
  m.observe_inter_token_latency(0.003);
  EngineGauges g;
  g.queue_length = 3;
  g.running_sequences = 2;
  g.kv_blocks_total = 100;
  g.kv_blocks_used = 25;
  g.kv_blocks_cached = 5;
  g.steps = 12;
  g.schedule_seconds = 0.5;
  g.forward_seconds = 2.25;
  g.after_seconds = 0.125;
  g.device_recoveries = 2;
  g.device_unusable = true;
  g.device_fallback = true;
  const auto s = m.render(g);
  EXPECT_TRUE(has_line(s, "rocmforge_requests_total{endpoint=\"/v1/chat/completions\",status=\"200\"} 2"));
  EXPECT_TRUE(has_line(s, "rocmforge_requests_total{endpoint=\"/v1/completions\",status=\"400\"} 1"));
  EXPECT_TRUE(has_line(s, "rocmforge_queue_length 3"));
  EXPECT_TRUE(has_line(s, "rocmforge_running_sequences 2"));
  EXPECT_TRUE(has_line(s, "rocmforge_prompt_tokens_total 10"));
  EXPECT_TRUE(has_line(s, "rocmforge_prompt_tokens_cached_total 4"));
  EXPECT_TRUE(has_line(s, "rocmforge_generation_tokens_total 7"));
  EXPECT_TRUE(has_line(s, "rocmforge_time_to_first_token_seconds_count 1"));
  EXPECT_TRUE(has_line(s, "rocmforge_inter_token_latency_seconds_bucket{le=\"0.005\"} 1"));
  EXPECT_TRUE(has_line(s, "rocmforge_kv_cache_blocks{state=\"used\"} 25"));
  EXPECT_TRUE(has_line(s, "rocmforge_kv_cache_blocks{state=\"free\"} 70"));
  EXPECT_TRUE(has_line(s, "rocmforge_kv_cache_usage_ratio 0.25"));
  EXPECT_TRUE(has_line(s, "# TYPE rocmforge_requests_total counter"));
  EXPECT_TRUE(has_line(s, "# TYPE rocmforge_time_to_first_token_seconds histogram"));
  EXPECT_TRUE(has_line(s, "# TYPE rocmforge_queue_length gauge"));
  EXPECT_TRUE(has_line(s, "rocmforge_engine_steps_total 12"));
  EXPECT_TRUE(has_line(s, "rocmforge_engine_step_seconds_total{phase=\"schedule\"} 0.5"));
  EXPECT_TRUE(has_line(s, "rocmforge_engine_step_seconds_total{phase=\"forward\"} 2.25"));
  EXPECT_TRUE(has_line(s, "rocmforge_engine_step_seconds_total{phase=\"after\"} 0.125"));
  EXPECT_TRUE(has_line(s, "rocmforge_device_recoveries_total 2"));
  EXPECT_TRUE(has_line(s, "rocmforge_device_lost 1"));
  EXPECT_TRUE(has_line(s, "rocmforge_device_fallback 1"));
  // Every sample line belongs to a family announced by a TYPE line before it.
  std::istringstream in(s);
  std::string current;
  for (std::string l; std::getline(in, l);) {
    if (l.rfind("# TYPE ", 0) == 0) {
      current = l.substr(7, l.find(' ', 7) - 7);
    } else if (!l.empty() && l[0] != '#') {
      EXPECT_EQ(l.rfind(current, 0), 0u) << l;
    }
  }
}

TEST(Metrics, LabelEscapingAndValueFormat) {
  EXPECT_EQ(Metrics::escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  EXPECT_EQ(Metrics::format_value(3), "3");
  EXPECT_EQ(Metrics::format_value(0.25), "0.25");
  EXPECT_EQ(Metrics::format_value(1.0 / 0.0), "+Inf");
}

}  // namespace
}  // namespace rf::server
