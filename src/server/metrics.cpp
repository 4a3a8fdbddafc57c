#include "server/metrics.h"

#include <cmath>
#include <cstdio>

namespace rf::server {
namespace {

void header(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, const std::string& name, double v) {
  out += name;
  out += ' ';
  out += Metrics::format_value(v);
  out += '\n';
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += v;
  ++count_;
}

std::string Histogram::render(const std::string& name) const {
  std::string out;
  uint64_t cum = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cum += counts_[i];
    const std::string le = i < bounds_.size() ? Metrics::format_value(bounds_[i]) : "+Inf";
    out += name + "_bucket{le=\"" + le + "\"} " + std::to_string(cum) + "\n";
  }
  out += name + "_sum " + Metrics::format_value(sum_) + "\n";
  out += name + "_count " + std::to_string(count_) + "\n";
  return out;
}

Metrics::Metrics()
    : ttft_({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}),
      itl_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}),
      duration_({0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}) {}

void Metrics::count_request(const std::string& endpoint, int status) {
  std::lock_guard lock(mu_);
  ++requests_[{endpoint, status}];
}

void Metrics::add_prompt_tokens(int64_t n, int64_t cached) {
  std::lock_guard lock(mu_);
  prompt_tokens_ += n;
  cached_prompt_tokens_ += cached;
}

void Metrics::add_generated_tokens(int64_t n) {
  std::lock_guard lock(mu_);
  generated_tokens_ += n;
}

void Metrics::observe_time_to_first_token(double s) {
  std::lock_guard lock(mu_);
  ttft_.observe(s);
}

void Metrics::observe_inter_token_latency(double s) {
  std::lock_guard lock(mu_);
  itl_.observe(s);
}

void Metrics::observe_request_duration(double s) {
  std::lock_guard lock(mu_);
  duration_.observe(s);
}

void Metrics::generation_started() {
  std::lock_guard lock(mu_);
  ++in_flight_;
}

void Metrics::generation_ended() {
  std::lock_guard lock(mu_);
  if (--in_flight_ == 0) idle_cv_.notify_all();
}

int64_t Metrics::generations_in_flight() const {
  std::lock_guard lock(mu_);
  return in_flight_;
}

bool Metrics::wait_generations_done(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return idle_cv_.wait_for(lock, timeout, [&] { return in_flight_ == 0; });
}

std::string Metrics::escape_label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string Metrics::format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<int64_t>(v));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

std::string Metrics::render(const EngineGauges& g) const {
  std::lock_guard lock(mu_);
  std::string out;
  header(out, "rocmforge_requests_total", "counter", "HTTP requests by endpoint and status code.");
  for (const auto& [key, n] : requests_) {
    out += "rocmforge_requests_total{endpoint=\"" + escape_label(key.first) + "\",status=\"" +
           std::to_string(key.second) + "\"} " + std::to_string(n) + "\n";
  }
  header(out, "rocmforge_generation_requests_in_flight", "gauge", "Completion requests being generated or sent.");
  sample(out, "rocmforge_generation_requests_in_flight", static_cast<double>(in_flight_));
  header(out, "rocmforge_queue_length", "gauge", "Sequences waiting to be admitted.");
  sample(out, "rocmforge_queue_length", static_cast<double>(g.queue_length));
  header(out, "rocmforge_running_sequences", "gauge", "Sequences admitted (prefilling or decoding).");
  sample(out, "rocmforge_running_sequences", static_cast<double>(g.running_sequences));
  header(out, "rocmforge_prompt_tokens_total", "counter", "Prompt tokens of admitted requests.");
  sample(out, "rocmforge_prompt_tokens_total", static_cast<double>(prompt_tokens_));
  header(out, "rocmforge_prompt_tokens_cached_total", "counter", "Prompt tokens served from the prefix cache.");
  sample(out, "rocmforge_prompt_tokens_cached_total", static_cast<double>(cached_prompt_tokens_));
  header(out, "rocmforge_generation_tokens_total", "counter", "Generated tokens.");
  sample(out, "rocmforge_generation_tokens_total", static_cast<double>(generated_tokens_));
  header(out, "rocmforge_time_to_first_token_seconds", "histogram", "Time from request to its first token.");
  out += ttft_.render("rocmforge_time_to_first_token_seconds");
  header(out, "rocmforge_inter_token_latency_seconds", "histogram", "Time between consecutive tokens of a sequence.");
  out += itl_.render("rocmforge_inter_token_latency_seconds");
  header(out, "rocmforge_request_duration_seconds", "histogram", "Time from request to its last token.");
  out += duration_.render("rocmforge_request_duration_seconds");
  header(out, "rocmforge_kv_cache_blocks", "gauge", "Paged KV-cache blocks by state.");
  out += "rocmforge_kv_cache_blocks{state=\"used\"} " + std::to_string(g.kv_blocks_used) + "\n";
  out += "rocmforge_kv_cache_blocks{state=\"cached\"} " + std::to_string(g.kv_blocks_cached) + "\n";
  out += "rocmforge_kv_cache_blocks{state=\"free\"} " +
         std::to_string(g.kv_blocks_total - g.kv_blocks_used - g.kv_blocks_cached) + "\n";
  header(out, "rocmforge_kv_cache_usage_ratio", "gauge", "Share of KV-cache blocks referenced by live sequences.");
  sample(out, "rocmforge_kv_cache_usage_ratio",
         g.kv_blocks_total > 0 ? static_cast<double>(g.kv_blocks_used) / static_cast<double>(g.kv_blocks_total) : 0.0);
  header(out, "rocmforge_preemptions_total", "counter", "Sequences preempted (KV blocks reclaimed, recomputed later).");
  sample(out, "rocmforge_preemptions_total", static_cast<double>(g.preemptions));
  header(out, "rocmforge_engine_steps_total", "counter", "Scheduler steps (batches) run.");
  sample(out, "rocmforge_engine_steps_total", static_cast<double>(g.steps));
  header(out, "rocmforge_engine_step_seconds_total", "counter",
         "Scheduler time by phase: batch choice, forward pass, sampling and hand-off.");
  out += "rocmforge_engine_step_seconds_total{phase=\"schedule\"} " + format_value(g.schedule_seconds) + "\n";
  out += "rocmforge_engine_step_seconds_total{phase=\"forward\"} " + format_value(g.forward_seconds) + "\n";
  out += "rocmforge_engine_step_seconds_total{phase=\"after\"} " + format_value(g.after_seconds) + "\n";
  header(out, "rocmforge_device_recoveries_total", "counter", "Lost GPU contexts reset, with the model reloaded.");
  sample(out, "rocmforge_device_recoveries_total", static_cast<double>(g.device_recoveries));
  header(out, "rocmforge_device_lost", "gauge",
         "1 when a lost GPU context could not be recovered (restart the server).");
  sample(out, "rocmforge_device_lost", g.device_unusable ? 1.0 : 0.0);
  header(out, "rocmforge_device_fallback", "gauge",
         "1 when a lost GPU could not be reset and the model runs on the CPU (slower; restart to use the GPU).");
  sample(out, "rocmforge_device_fallback", g.device_fallback ? 1.0 : 0.0);
  return out;
}

}  // namespace rf::server
