#include "server/completion_handler.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <limits>
#include <random>

#include "server/api_error.h"
#include "server/choice_assembler.h"
#include "server/client_socket.h"
#include "server/response.h"

namespace rf::server {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::variant<std::vector<int32_t>, ApiError> build_prompt(const CompletionRequest& r, const ServedModel& m) {
  std::vector<int32_t> tokens;
  if (r.endpoint == Endpoint::kChat) {
    chat::ChatRequest cr;
    cr.messages = r.messages;
    cr.add_generation_prompt = true;
    cr.bos_token = m.bos_text;
    cr.eos_token = m.eos_text;
    auto text = m.chat_template->render_chat(cr);
    if (!text) return invalid_request(text.error_message(), "messages");
    const bool has_bos = !m.bos_text.empty() && text->rfind(m.bos_text, 0) == 0;
    tokens = m.tokenizer->tokenize(*text, /*add_special=*/!has_bos, /*parse_special=*/true);
  } else if (r.prompt_is_tokens) {
    tokens = r.prompt_tokens;
  } else {
    tokens = m.tokenizer->tokenize(r.prompt_text, /*add_special=*/true, /*parse_special=*/true);
  }
  if (tokens.empty()) return invalid_request("the prompt is empty", "prompt");
  return tokens;
}

// The n sequences of one request, turned into choices.
struct Generation {
  Generation(Endpoint e, CompletionRequest r, ResponseMeta m, Metrics& mx, Clock::time_point t0)
      : endpoint(e), req(std::move(r)), meta(std::move(m)), metrics(mx), start(t0) {
    metrics.generation_started();
  }
  ~Generation() {
    cancel_all();
    metrics.generation_ended();
    metrics.add_prompt_tokens(usage.prompt_tokens, usage.cached_tokens);
    int64_t generated = 0;
    for (const auto& c : choices) generated += c.n_tokens();
    metrics.add_generated_tokens(generated);
    metrics.observe_request_duration(seconds(Clock::now() - start));
  }

  using DeltaFn = std::function<void(int32_t index, ChoiceAssembler::Delta& delta, const std::string* finish)>;

  void cancel_all() {
    for (size_t i = 0; i < handles.size(); ++i) {
      if (finish[i].empty()) handles[i]->cancel();
    }
  }
  bool all_finished() const {
    return std::all_of(finish.begin(), finish.end(), [](const std::string& f) { return !f.empty(); });
  }
  int64_t completion_tokens() const {
    int64_t n = 0;
    for (const auto& c : choices) n += c.n_tokens();
    return n;
  }

  // Collects what the engine produced (waiting up to `wait` when nothing is ready) and reports it per choice.
  void poll(std::chrono::milliseconds wait, const DeltaFn& fn) {
    std::vector<runtime::SequenceUpdate> ups(handles.size());
    bool any = false;
    for (size_t i = 0; i < handles.size(); ++i) {
      if (finish[i].empty()) any = handles[i]->next(&ups[i], 0ms) || any;
    }
    if (!any) {
      for (size_t i = 0; i < handles.size(); ++i) {
        if (finish[i].empty()) {
          handles[i]->next(&ups[i], wait);
          break;
        }
      }
    }
    const auto now = Clock::now();
    for (size_t i = 0; i < handles.size(); ++i) {
      auto& u = ups[i];
      if (!finish[i].empty()) continue;
      if (i == 0 && u.prompt_tokens > 0) usage.cached_tokens = u.cached_prompt_tokens;
      if (!u.tokens.empty()) {
        if (!first_token_seen) {
          first_token_seen = true;
          metrics.observe_time_to_first_token(seconds(now - start));
        } else if (last_token[i] != Clock::time_point{}) {
          const double per = seconds(now - last_token[i]) / static_cast<double>(u.tokens.size());
          for (size_t k = 0; k < u.tokens.size(); ++k) metrics.observe_inter_token_latency(per);
        }
        last_token[i] = now;
      }
      ChoiceAssembler::Delta acc;
      bool stopped = false;
      for (const auto& ev : u.tokens) {
        auto d = choices[i].add(ev);
        acc.text += d.text;
        acc.logprobs.insert(acc.logprobs.end(), d.logprobs.begin(), d.logprobs.end());
        acc.text_offsets.insert(acc.text_offsets.end(), d.text_offsets.begin(), d.text_offsets.end());
        if (d.stopped) {
          stopped = true;
          break;
        }
      }
      const std::string* fin = nullptr;
      if (stopped) {
        handles[i]->cancel();
        finish[i] = "stop";
        fin = &finish[i];
      } else if (u.finish == runtime::FinishReason::kError) {
        error = u.error.empty() ? "generation failed" : u.error;
        finish[i] = "error";
        continue;
      } else if (u.finish != runtime::FinishReason::kNone) {
        auto d = choices[i].finish();
        acc.text += d.text;
        acc.logprobs.insert(acc.logprobs.end(), d.logprobs.begin(), d.logprobs.end());
        acc.text_offsets.insert(acc.text_offsets.end(), d.text_offsets.begin(), d.text_offsets.end());
        // Cut off by the engine's shutdown (kShutdown; kCancelled too, as this handler cancels only choices it has
        // finished): "stop" (OpenAI has no finish reason for it), and the response reports the interruption.
        const bool cut = u.finish == runtime::FinishReason::kShutdown || u.finish == runtime::FinishReason::kCancelled;
        interrupted = interrupted || (cut && !d.stopped);
        finish[i] = d.stopped || u.finish != runtime::FinishReason::kLength ? "stop" : "length";
        fin = &finish[i];
      }
      fn(static_cast<int32_t>(i), acc, fin);
    }
  }

  Endpoint endpoint;
  CompletionRequest req;
  ResponseMeta meta;
  Metrics& metrics;
  Clock::time_point start;
  std::vector<std::shared_ptr<runtime::SequenceHandle>> handles;
  std::vector<ChoiceAssembler> choices;
  std::vector<std::string> finish;
  std::vector<Clock::time_point> last_token;
  Usage usage;
  bool first_token_seen = false;
  bool started = false;
  std::string error;         // a choice failed (engine error): the response is an error
  bool interrupted = false;  // a choice was cut off by the server's shutdown
};

ApiError shutdown_error(const Generation& g) {
  return server_shutting_down("the server is shutting down: the completion was stopped after " +
                              std::to_string(g.completion_tokens()) + " generated tokens; retry on a running server");
}

// A non-streaming answer: nothing is written until every choice has finished, so a client that goes away meanwhile
// is noticed by watching its connection; its sequences are cancelled at once (their KV blocks freed).
void respond_whole(Generation& g, const httplib::Request& req, httplib::Response& res) {
  const size_t n = g.handles.size();
  std::vector<std::vector<TokenLogprob>> lps(n);
  std::vector<std::vector<size_t>> offsets(n);
  ClientConnection client(req);
  while (!g.all_finished() && g.error.empty()) {
    if (client.gone()) {
      g.cancel_all();
      set_error(res, ApiError{499, "the client closed the connection before the completion was ready",
                              "invalid_request_error", std::nullopt, "client_closed_request"});
      return;
    }
    g.poll(50ms, [&](int32_t i, ChoiceAssembler::Delta& d, const std::string*) {
      auto& l = lps[static_cast<size_t>(i)];
      l.insert(l.end(), d.logprobs.begin(), d.logprobs.end());
      auto& o = offsets[static_cast<size_t>(i)];
      o.insert(o.end(), d.text_offsets.begin(), d.text_offsets.end());
    });
  }
  if (!g.error.empty()) {
    g.cancel_all();  // the other choices would be thrown away
    set_error(res, internal_error(g.error));
    return;
  }
  if (g.interrupted) {  // a cut-off text with a normal finish reason would pass for a complete answer
    set_error(res, shutdown_error(g));
    return;
  }
  g.usage.completion_tokens = g.completion_tokens();
  std::vector<ChoiceResult> choices;
  for (size_t i = 0; i < n; ++i) {
    ChoiceResult c;
    c.index = static_cast<int32_t>(i);
    c.text = g.choices[i].text();
    c.finish_reason = g.finish[i];
    if (g.req.logprobs) c.logprobs = std::move(lps[i]);
    choices.push_back(std::move(c));
  }
  const auto body = g.endpoint == Endpoint::kChat ? chat_completion_json(g.meta, choices, g.usage)
                                                  : text_completion_json(g.meta, choices, offsets, g.usage);
  res.set_content(dump_json(body), "application/json");
}

// One call of the chunked content provider: sends whatever is ready. false = the client is gone.
bool stream_step(Generation& g, httplib::DataSink& sink) {
  // A client that left is noticed here even while nothing is written (a stream still queued for admission).
  if (!sink.is_writable()) return false;
  auto write = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
  const bool chat = g.endpoint == Endpoint::kChat;
  if (!g.started) {
    g.started = true;
    for (size_t i = 0; chat && i < g.handles.size(); ++i) {
      if (!write(sse_event(chat_chunk_role(g.meta, static_cast<int32_t>(i))))) return false;
    }
  }
  bool ok = true;
  g.poll(50ms, [&](int32_t i, ChoiceAssembler::Delta& d, const std::string* fin) {
    const bool lp = g.req.logprobs && !d.logprobs.empty();
    if (ok && !d.empty()) {
      const auto chunk = chat ? chat_chunk_content(g.meta, i, d.text, lp ? &d.logprobs : nullptr)
                              : text_chunk(g.meta, i, d.text, lp ? &d.logprobs : nullptr,
                                           lp ? &d.text_offsets : nullptr, std::nullopt);
      ok = write(sse_event(chunk));
    }
    if (ok && fin) {
      const auto chunk = chat ? chat_chunk_finish(g.meta, i, *fin) : text_chunk(g.meta, i, "", nullptr, nullptr, *fin);
      ok = write(sse_event(chunk));
    }
  });
  if (!ok) return false;
  if (!g.error.empty()) {
    write(sse_event(internal_error(g.error).to_json()));
    write(sse_done());
    sink.done();
    return true;
  }
  if (g.all_finished()) {
    if (g.req.include_usage) {
      g.usage.completion_tokens = g.completion_tokens();
      if (!write(sse_event(usage_chunk(g.meta, g.endpoint, g.usage)))) return false;
    }
    // Every choice got its finish chunk ("stop" for the cut-off ones); the error event then tells clients (the
    // official SDKs raise it) that the text is incomplete.
    if (g.interrupted && !write(sse_event(shutdown_error(g).to_json()))) return false;
    if (!write(sse_done())) return false;
    sink.done();
  }
  return true;
}

}  // namespace

void set_error(httplib::Response& res, const ApiError& err) {
  res.status = err.status;
  if (err.status == 503 || err.status == 429) res.set_header("Retry-After", "1");
  res.set_content(err.body(), "application/json");
}

void handle_generation(Endpoint endpoint, std::shared_ptr<const ServedModel> model, Metrics& metrics,
                       const httplib::Request& req, httplib::Response& res) {
  const auto t0 = Clock::now();
  if (!model || !model->engine) {
    set_error(res, server_overloaded("the model is still loading; retry when GET /ready answers 200"));
    return;
  }
  auto parsed = parse_request(endpoint, req.body);
  if (auto* err = std::get_if<ApiError>(&parsed)) {
    set_error(res, *err);
    return;
  }
  CompletionRequest r = std::move(std::get<CompletionRequest>(parsed));
  const ServedModel& m = *model;
  if (!r.model.empty() && r.model != m.id &&
      std::find(m.aliases.begin(), m.aliases.end(), r.model) == m.aliases.end()) {
    ApiError e =
        not_found("the model '" + r.model + "' does not exist; this server serves '" + m.id + "'", "model_not_found");
    e.param = "model";
    set_error(res, e);
    return;
  }
  auto prompt = build_prompt(r, m);
  if (auto* err = std::get_if<ApiError>(&prompt)) {
    set_error(res, *err);
    return;
  }
  auto& tokens = std::get<std::vector<int32_t>>(prompt);
  const int64_t room = static_cast<int64_t>(m.engine->ctx_size()) - static_cast<int64_t>(tokens.size());
  if (room < 1) {
    ApiError e =
        invalid_request("the prompt has " + std::to_string(tokens.size()) + " tokens but the context holds " +
                            std::to_string(m.engine->ctx_size()) + " (prompt plus at least one generated token)",
                        endpoint == Endpoint::kChat ? "messages" : "prompt", "context_length_exceeded");
    set_error(res, e);
    return;
  }
  // Only a prompt that leaves no room is an error (400 above). A max_tokens beyond what the context can still hold
  // (or none) is not: the engine generates until the context is full and finishes with "length", and usage counts
  // what was really generated.
  const int64_t max_tokens = r.max_tokens.value_or(std::numeric_limits<int32_t>::max());
  const uint64_t base_seed = r.sampling.seed ? *r.sampling.seed : std::random_device{}() * 0x9E3779B97F4A7C15ull;
  std::vector<runtime::SequenceParams> group;
  for (int32_t i = 0; i < r.n; ++i) {
    runtime::SequenceParams p;
    p.prompt = tokens;
    p.max_tokens = static_cast<int32_t>(std::min<int64_t>(max_tokens, std::numeric_limits<int32_t>::max()));
    p.top_logprobs = r.logprobs ? r.top_logprobs : -1;
    p.ignore_eos = r.ignore_eos;
    auto& s = p.sampler;
    s.temperature = static_cast<float>(r.sampling.temperature);
    s.top_k = r.sampling.top_k;
    s.top_p = static_cast<float>(r.sampling.top_p);
    s.min_p = static_cast<float>(r.sampling.min_p);
    s.repeat_penalty = static_cast<float>(r.sampling.repetition_penalty);
    s.presence_penalty = static_cast<float>(r.sampling.presence_penalty);
    s.frequency_penalty = static_cast<float>(r.sampling.frequency_penalty);
    s.repeat_last_n = 64;
    s.seed = base_seed + static_cast<uint64_t>(i);
    group.push_back(std::move(p));
  }
  auto sub = m.engine->submit(std::move(group));
  if (!sub.ok()) {
    if (sub.error == runtime::SubmitError::kInvalid) {
      set_error(res, invalid_request(sub.message, endpoint == Endpoint::kChat ? "messages" : "prompt"));
    } else if (sub.error == runtime::SubmitError::kShuttingDown) {
      set_error(res, server_shutting_down(sub.message));
    } else {
      set_error(res, server_overloaded(sub.message));
    }
    return;
  }
  ResponseMeta meta{make_response_id(endpoint), unix_time_now(), m.id, r.stream && r.include_usage};
  auto g = std::make_shared<Generation>(endpoint, r, std::move(meta), metrics, t0);
  g->usage.prompt_tokens = static_cast<int64_t>(tokens.size());
  g->handles = std::move(sub.handles);
  for (size_t i = 0; i < g->handles.size(); ++i) {
    g->choices.emplace_back(m.tokenizer, r.stop, r.logprobs);
    g->finish.emplace_back();
    g->last_token.emplace_back();
  }
  if (!r.stream) {
    respond_whole(*g, req, res);
    return;
  }
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  // The model (and its engine) outlive every request: the server detaches it only after stopping.
  res.set_chunked_content_provider(
      "text/event-stream",
      [g, model](size_t, httplib::DataSink& sink) {
        if (!stream_step(*g, sink)) {
          g->cancel_all();
          return false;
        }
        return true;
      },
      [g](bool) { g->cancel_all(); });
}

}  // namespace rf::server
