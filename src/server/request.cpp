#include "server/request.h"

#include <cmath>
#include <limits>

namespace rf::server {
namespace {

using Json = nlohmann::json;

constexpr int kMaxNesting = 64;

const char* type_name(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::boolean:
      return "boolean";
    case Json::value_t::string:
      return "string";
    case Json::value_t::array:
      return "array";
    case Json::value_t::object:
      return "object";
    case Json::value_t::number_float:
      return "number";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "integer";
    default:
      return "value";
  }
}

std::string fmt_num(double v) {
  Json j = v;
  return j.dump();
}

// Nesting depth of a JSON text without parsing it (strings skipped), so that hostile inputs are rejected cheaply.
int max_depth(std::string_view s) {
  int depth = 0, best = 0;
  bool in_string = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      best = std::max(best, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return best;
}

// Field readers: return an error, or leave `out` unchanged when the field is absent or null.
class Reader {
 public:
  explicit Reader(const Json& obj) : obj_(obj) {}
  std::optional<ApiError> error;

  const Json* field(const char* key) {
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  bool fail(std::string message, const std::string& param) {
    if (!error) error = invalid_request(std::move(message), param);
    return false;
  }

  bool wrong_type(const char* key, const char* expected, const Json& v) {
    return fail(std::string("'") + key + "' must be " + expected + ", got " + type_name(v), key);
  }

  bool number(const char* key, double lo, double hi, bool lo_open, double* out) {
    const Json* v = field(key);
    if (!v) return true;
    if (!v->is_number()) return wrong_type(key, "a number", *v);
    const double d = v->get<double>();
    if (!std::isfinite(d) || d < lo || d > hi || (lo_open && d == lo)) {
      return fail(std::string("'") + key + "' must be " + (lo_open ? "greater than " : "between ") + fmt_num(lo) +
                      (lo_open ? " and at most " : " and ") + fmt_num(hi) + ", got " + v->dump(),
                  key);
    }
    *out = d;
    return true;
  }

  // An integer (an integral float is accepted) in [lo, hi].
  bool integer(const char* key, int64_t lo, int64_t hi, std::optional<int64_t>* out) {
    const Json* v = field(key);
    if (!v) return true;
    int64_t value = 0;
    if (!as_int64(*v, &value)) return wrong_type(key, "an integer", *v);
    if (value < lo || value > hi) {
      return fail(std::string("'") + key + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                      ", got " + v->dump(),
                  key);
    }
    *out = value;
    return true;
  }

  bool boolean(const char* key, bool* out) {
    const Json* v = field(key);
    if (!v) return true;
    if (!v->is_boolean()) return wrong_type(key, "a boolean", *v);
    *out = v->get<bool>();
    return true;
  }

  bool string(const char* key, std::string* out) {
    const Json* v = field(key);
    if (!v) return true;
    if (!v->is_string()) return wrong_type(key, "a string", *v);
    *out = v->get<std::string>();
    return true;
  }

  static bool as_int64(const Json& v, int64_t* out) {
    if (v.is_number_integer() && !v.is_number_unsigned()) {
      *out = v.get<int64_t>();
      return true;
    }
    if (v.is_number_unsigned()) {
      const uint64_t u = v.get<uint64_t>();
      *out = u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ? std::numeric_limits<int64_t>::max()
                                                                            : static_cast<int64_t>(u);
      return true;
    }
    if (v.is_number_float()) {
      const double d = v.get<double>();
      if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9.0e18) return false;
      *out = static_cast<int64_t>(d);
      return true;
    }
    return false;
  }

 private:
  const Json& obj_;
};

bool parse_messages(Reader& r, const Json& body, CompletionRequest& req) {
  const Json* m = r.field("messages");
  if (!m) return r.fail("'messages' is required", "messages");
  if (!m->is_array()) return r.wrong_type("messages", "an array", *m);
  if (m->empty()) return r.fail("'messages' must contain at least one message", "messages");
  static const char* kRoles[] = {"system", "developer", "user", "assistant", "tool", "function"};
  for (size_t i = 0; i < m->size(); ++i) {
    const Json& msg = (*m)[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!msg.is_object()) return r.fail("'" + where + "' must be an object, got " + type_name(msg), where);
    auto role = msg.find("role");
    if (role == msg.end() || !role->is_string()) {
      return r.fail("'" + where + ".role' must be a string", where + ".role");
    }
    const auto role_s = role->get<std::string>();
    bool known = false;
    for (const char* k : kRoles) known = known || role_s == k;
    if (!known) {
      return r.fail("'" + where + ".role' must be one of system, developer, user, assistant, tool, function; got '" +
                        role_s + "'",
                    where + ".role");
    }
    nlohmann::ordered_json out = nlohmann::ordered_json::parse(msg.dump());  // keep other keys (name, tool_calls)
    auto content = msg.find("content");
    if (content == msg.end() || content->is_null()) {
      if (role_s != "assistant") return r.fail("'" + where + ".content' is required", where + ".content");
      out["content"] = "";
    } else if (content->is_string()) {
      // kept as is
    } else if (content->is_array()) {
      std::string text;
      for (size_t p = 0; p < content->size(); ++p) {
        const Json& part = (*content)[p];
        const std::string pw = where + ".content[" + std::to_string(p) + "]";
        if (!part.is_object() || !part.contains("type") || !part["type"].is_string()) {
          return r.fail("'" + pw + "' must be an object with a string 'type'", pw);
        }
        if (part["type"] != "text") {
          return r.fail("'" + pw + "': content parts of type '" + part["type"].get<std::string>() +
                            "' are not supported (only 'text')",
                        pw);
        }
        if (!part.contains("text") || !part["text"].is_string()) {
          return r.fail("'" + pw + ".text' must be a string", pw + ".text");
        }
        text += part["text"].get<std::string>();
      }
      out["content"] = text;
    } else {
      return r.fail(
          "'" + where + ".content' must be a string, an array of content parts or null, got " + type_name(*content),
          where + ".content");
    }
    req.messages.push_back(std::move(out));
  }
  (void)body;
  return true;
}

bool token_array(Reader& r, const Json& a, const std::string& param, std::vector<int32_t>* out) {
  if (a.empty()) return r.fail("'" + param + "' must not be empty", param);
  for (size_t i = 0; i < a.size(); ++i) {
    int64_t t = 0;
    if (!Reader::as_int64(a[i], &t) || t < 0 || t > std::numeric_limits<int32_t>::max()) {
      return r.fail("'" + param + "[" + std::to_string(i) + "]' must be a non-negative token id, got " + a[i].dump(),
                    param);
    }
    out->push_back(static_cast<int32_t>(t));
  }
  return true;
}

bool parse_prompt(Reader& r, CompletionRequest& req) {
  const Json* p = r.field("prompt");
  if (!p) return r.fail("'prompt' is required", "prompt");
  if (p->is_string()) {
    req.prompt_text = p->get<std::string>();
    return true;
  }
  if (!p->is_array()) return r.wrong_type("prompt", "a string or an array", *p);
  if (p->empty()) return r.fail("'prompt' must not be empty", "prompt");
  const Json& first = (*p)[0];
  if (first.is_number()) {
    req.prompt_is_tokens = true;
    return token_array(r, *p, "prompt", &req.prompt_tokens);
  }
  if (p->size() > 1)
    return r.fail("'prompt': only one prompt per request is supported, got " + std::to_string(p->size()), "prompt");
  if (first.is_string()) {
    req.prompt_text = first.get<std::string>();
    return true;
  }
  if (first.is_array()) {
    req.prompt_is_tokens = true;
    return token_array(r, first, "prompt[0]", &req.prompt_tokens);
  }
  return r.fail("'prompt' must be a string, an array of token ids, or a one-element array of either", "prompt");
}

bool parse_stop(Reader& r, CompletionRequest& req) {
  const Json* s = r.field("stop");
  if (!s) return true;
  if (s->is_string()) {
    if (!s->get<std::string>().empty()) req.stop.push_back(s->get<std::string>());
    return true;
  }
  if (!s->is_array()) return r.wrong_type("stop", "a string or an array of strings", *s);
  if (s->size() > kMaxStopStrings) {
    return r.fail(
        "'stop' may hold at most " + std::to_string(kMaxStopStrings) + " strings, got " + std::to_string(s->size()),
        "stop");
  }
  for (size_t i = 0; i < s->size(); ++i) {
    if (!(*s)[i].is_string()) {
      return r.fail("'stop[" + std::to_string(i) + "]' must be a string, got " + type_name((*s)[i]), "stop");
    }
    if (!(*s)[i].get<std::string>().empty()) req.stop.push_back((*s)[i].get<std::string>());
  }
  return true;
}

}  // namespace

std::variant<CompletionRequest, ApiError> parse_request(Endpoint endpoint, std::string_view body) {
  if (max_depth(body) > kMaxNesting) {
    return invalid_request("request body nests JSON deeper than " + std::to_string(kMaxNesting) + " levels");
  }
  Json j;
  try {
    j = Json::parse(body.begin(), body.end());
  } catch (const Json::exception& e) {
    return invalid_request(std::string("request body is not valid JSON: ") + e.what());
  }
  return parse_request_json(endpoint, j);
}

std::variant<CompletionRequest, ApiError> parse_request_json(Endpoint endpoint, const Json& body) {
  if (!body.is_object())
    return invalid_request(std::string("request body must be a JSON object, got ") + type_name(body));
  CompletionRequest req;
  req.endpoint = endpoint;
  Reader r(body);
  SamplingFields& s = req.sampling;
  std::optional<int64_t> v;

  r.string("model", &req.model);
  if (endpoint == Endpoint::kChat) {
    parse_messages(r, body, req);
  } else {
    parse_prompt(r, req);
  }
  r.integer("max_tokens", 1, std::numeric_limits<int64_t>::max(), &req.max_tokens);
  if (endpoint == Endpoint::kChat) {
    r.integer("max_completion_tokens", 1, std::numeric_limits<int64_t>::max(), &req.max_tokens);
  }
  r.number("temperature", 0.0, 2.0, false, &s.temperature);
  r.number("top_p", 0.0, 1.0, true, &s.top_p);
  v.reset();
  r.integer("top_k", -1, std::numeric_limits<int32_t>::max(), &v);
  if (v) s.top_k = static_cast<int32_t>(std::max<int64_t>(*v, 0));
  r.number("min_p", 0.0, 1.0, false, &s.min_p);
  r.number("presence_penalty", -2.0, 2.0, false, &s.presence_penalty);
  r.number("frequency_penalty", -2.0, 2.0, false, &s.frequency_penalty);
  r.number("repetition_penalty", 0.0, 10.0, true, &s.repetition_penalty);
  if (const Json* seed = r.field("seed")) {
    int64_t x = 0;
    if (seed->is_number_unsigned()) {
      s.seed = seed->get<uint64_t>();
    } else if (Reader::as_int64(*seed, &x)) {
      s.seed = static_cast<uint64_t>(x);
    } else {
      r.wrong_type("seed", "an integer", *seed);
    }
  }
  parse_stop(r, req);
  v.reset();
  r.integer("n", 1, kMaxChoices, &v);
  if (v) req.n = static_cast<int32_t>(*v);

  if (endpoint == Endpoint::kChat) {
    r.boolean("logprobs", &req.logprobs);
    v.reset();
    r.integer("top_logprobs", 0, kMaxTopLogprobs, &v);
    if (v) {
      if (!req.logprobs) r.fail("'top_logprobs' requires 'logprobs' to be true", "top_logprobs");
      req.top_logprobs = static_cast<int32_t>(*v);
    }
  } else {
    v.reset();
    if (const Json* lp = r.field("logprobs"); lp && lp->is_boolean()) {
      req.logprobs = lp->get<bool>();  // accepted for symmetry with chat
    } else {
      r.integer("logprobs", 0, kMaxTopLogprobs, &v);
      if (v) {
        req.logprobs = true;
        req.top_logprobs = static_cast<int32_t>(*v);
      }
    }
  }
  r.boolean("stream", &req.stream);
  r.boolean("ignore_eos", &req.ignore_eos);
  if (const Json* so = r.field("stream_options")) {
    if (!so->is_object()) {
      r.wrong_type("stream_options", "an object", *so);
    } else if (!req.stream) {
      r.fail("'stream_options' is only allowed when 'stream' is true", "stream_options");
    } else if (auto iu = so->find("include_usage"); iu != so->end() && !iu->is_null()) {
      if (!iu->is_boolean()) {
        r.fail(std::string("'stream_options.include_usage' must be a boolean, got ") + type_name(*iu),
               "stream_options.include_usage");
      } else {
        req.include_usage = iu->get<bool>();
      }
    }
  }
  r.string("user", &req.user);
  if (r.error) return *r.error;
  return req;
}

}  // namespace rf::server
