// Jinja2 filters and tests. tojson follows Hugging Face's override: Python json.dumps(x, ensure_ascii=False,
// indent=None, separators=None, sort_keys=False), without HTML escaping.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "chat/builtins.h"
#include "chat/text_util.h"

namespace rf::chat {

namespace {

const std::set<std::string>& filter_names() {
  static const std::set<std::string> k = {
      "abs",     "attr",  "capitalize", "center", "count",      "d",    "default", "dictsort",   "e",
      "escape",  "first", "float",      "format", "indent",     "int",  "items",   "join",       "last",
      "length",  "list",  "lower",      "map",    "max",        "min",  "reject",  "rejectattr", "replace",
      "reverse", "round", "safe",       "select", "selectattr", "sort", "string",  "sum",        "title",
      "tojson",  "trim",  "unique",     "upper",  "wordcount"};
  return k;
}

const std::set<std::string>& test_names() {
  static const std::set<std::string> k = {
      "boolean",  "callable", "defined", "divisibleby", "eq",   "equalto",   "==",     "escaped",
      "even",     "false",    "filter",  "float",       "ge",   ">=",        "gt",     "greaterthan",
      ">",        "in",       "integer", "iterable",    "le",   "<=",        "lower",  "lt",
      "lessthan", "<",        "mapping", "ne",          "!=",   "none",      "number", "odd",
      "sameas",   "sequence", "string",  "test",        "true", "undefined", "upper"};
  return k;
}

bool arg_bool(const CallArgs& a, size_t pos, const char* name, bool fallback) {
  const Value* v = a.get(pos, name);
  return v == nullptr ? fallback : truthy(*v);
}

// Item lookup along a dotted path ("a.b", "0"), as Jinja's attribute getters do.
Value attr_path(Env& env, Value v, const std::string& path) {
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    const bool digits = !part.empty() && part.size() < 18 &&
                        std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    v = get_item(env, v, digits ? Value::integer(std::atoll(part.c_str())) : Value::string(part));
    if (dot == std::string::npos) return v;
    if (v.is_undefined()) return v;
    start = dot + 1;
  }
}

std::string str_of(Env& env, const Value& v) { return to_str(v, env.max_string); }

// Rebuilds the argument list without its first `skip` positional entries (select/map forwarding).
CallArgs drop_args(const CallArgs& a, size_t skip) {
  CallArgs out;
  for (size_t i = skip; i < a.args.size(); ++i) out.args.push_back(a.args[i]);
  return out;
}

Value select_like(Env& env, const std::string& name, const Value& input, const CallArgs& a) {
  const bool by_attr = name == "selectattr" || name == "rejectattr";
  const bool keep_if = name == "select" || name == "selectattr";
  if (!truthy(input)) return make_list(env, {});  // Jinja2 yields nothing for a falsy input (e.g. none)
  std::string attr;
  size_t next = 0;
  if (by_attr) {
    const Value* v = a.get(0, "attribute");
    if (v == nullptr || !v->is_string()) fail(name + ": an attribute name is required");
    attr = v->as_string();
    next = 1;
  }
  std::string test;
  if (next < a.args.size()) {
    if (!a.args[next].is_string()) fail(name + ": the test name must be a string");
    test = a.args[next].as_string();
    if (!is_known_test(test)) fail("no test named '" + test + "'");
  }
  const CallArgs test_args = drop_args(a, next + 1);
  std::vector<Value> out;
  for (const Value& item : iterate(input)) {
    const Value subject = by_attr ? attr_path(env, item, attr) : item;
    const bool pass = test.empty() ? truthy(subject) : apply_test(env, test, subject, test_args);
    if (pass == keep_if) out.push_back(item);
  }
  return make_list(env, std::move(out));
}

Value map_filter(Env& env, const Value& input, const CallArgs& a) {
  std::vector<Value> out;
  if (!truthy(input)) return make_list(env, {});  // Jinja2 yields nothing for a falsy input (e.g. none)
  const Value* attribute = a.get(99, "attribute");
  if (attribute != nullptr) {
    const Value* fallback = a.get(99, "default");
    const std::string path = str_of(env, *attribute);
    for (const Value& item : iterate(input)) {
      Value v = attr_path(env, item, path);
      if (v.is_undefined() && fallback != nullptr) v = *fallback;
      out.push_back(v);
    }
    return make_list(env, std::move(out));
  }
  if (a.args.empty() || !a.args[0].is_string()) fail("map: a filter name or attribute= is required");
  const std::string filter = a.args[0].as_string();
  if (!is_known_filter(filter)) fail("no filter named '" + filter + "'");
  const CallArgs rest = drop_args(a, 1);
  for (const Value& item : iterate(input)) out.push_back(apply_filter(env, filter, item, rest));
  return make_list(env, std::move(out));
}

// Sort key for sort/unique/min/max: the attribute (if any), lowercased unless case-sensitive.
Value sort_key(Env& env, const Value& item, const Value* attribute, bool case_sensitive) {
  Value v = attribute != nullptr ? attr_path(env, item, str_of(env, *attribute)) : item;
  if (!case_sensitive && v.is_string()) return Value::string(text::lower(v.as_string()));
  return v;
}

Value tojson(Env& env, const Value& input, const CallArgs& a) {
  JsonOptions o;
  if (const Value* v = a.get(0, "ensure_ascii")) o.ensure_ascii = truthy(*v);
  const Value* indent = a.get(1, "indent");
  if (indent != nullptr && !indent->is_none()) {
    o.has_indent = true;
    if (indent->is_string()) {
      o.indent = indent->as_string();
    } else if (indent->is_integral()) {
      o.indent = std::string(static_cast<size_t>(std::clamp<int64_t>(indent->as_int(), 0, 64)), ' ');
    } else {
      fail("tojson: indent must be an integer or a string");
    }
    o.item_sep = ",";
  }
  const Value* seps = a.get(2, "separators");
  if (seps != nullptr && !seps->is_none()) {
    if (!seps->is_list() || seps->as_list()->items.size() != 2 || !seps->as_list()->items[0].is_string() ||
        !seps->as_list()->items[1].is_string()) {
      fail("tojson: separators must be a pair of strings");
    }
    o.item_sep = seps->as_list()->items[0].as_string();
    o.key_sep = seps->as_list()->items[1].as_string();
  }
  o.sort_keys = arg_bool(a, 3, "sort_keys", false);
  return Value::string(to_json(input, o, env.max_string));
}

std::string indent_filter(Env& env, const std::string& s, const CallArgs& a) {
  std::string pad = "    ";
  if (const Value* w = a.get(0, "width")) {
    pad = w->is_string() ? w->as_string()
                         : std::string(static_cast<size_t>(std::clamp<int64_t>(w->as_int(), 0, 256)), ' ');
  }
  const bool first = arg_bool(a, 1, "first", false);
  const bool blank = arg_bool(a, 2, "blank", false);
  std::vector<std::string> lines = text::splitlines(s + "\n");
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) {
      out += '\n';
      if (blank || !lines[i].empty()) out += pad;
    }
    out += lines[i];
    if (out.size() > env.max_string) fail("string exceeds the output limit");
  }
  if (first) out = pad + out;
  return out;
}

Value to_int(const Value& v, const Value& fallback) {
  if (v.is_integral()) return Value::integer(v.as_int());
  if (v.kind() == Kind::kFloat) {
    const double f = v.as_double();
    if (!std::isfinite(f) || std::fabs(f) > 9.2e18) return fallback;
    return Value::integer(static_cast<int64_t>(f));
  }
  if (v.is_string()) {
    std::string s = text::strip(v.as_string(), true, true);
    s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
    if (s.empty()) return fallback;
    errno = 0;
    char* end = nullptr;
    const long long i = std::strtoll(s.c_str(), &end, 10);
    if (errno == 0 && end == s.c_str() + s.size()) return Value::integer(i);
    errno = 0;
    const double f = std::strtod(s.c_str(), &end);
    if (errno == 0 && end == s.c_str() + s.size()) return to_int(Value::number(f), fallback);
  }
  return fallback;
}

Value to_float(const Value& v, const Value& fallback) {
  if (v.is_number()) return Value::number(v.as_double());
  if (v.is_string()) {
    const std::string s = text::strip(v.as_string(), true, true);
    char* end = nullptr;
    const double f = std::strtod(s.c_str(), &end);
    if (!s.empty() && end == s.c_str() + s.size()) return Value::number(f);
  }
  return fallback;
}

Value round_filter(const Value& v, const CallArgs& a) {
  if (!v.is_number()) fail("round: a number is required, not " + type_name(v));
  const Value* p = a.get(0, "precision");
  const int64_t precision = p == nullptr ? 0 : std::clamp<int64_t>(p->as_int(), -300, 300);
  const Value* m = a.get(1, "method");
  const std::string method = m == nullptr ? "common" : m->as_string();
  const double x = v.as_double();
  if (method == "common") {
    if (v.is_integral() && precision >= 0) return Value::integer(v.as_int());
    if (precision >= 0) {
      // Correctly rounded decimal text, ties to even as Python's round().
      char buf[400];
      std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(precision), x);
      return Value::number(std::strtod(buf, nullptr));
    }
    const double scale = std::pow(10.0, static_cast<double>(-precision));
    return Value::number(std::nearbyint(x / scale) * scale);
  }
  if (method != "ceil" && method != "floor") fail("round: method must be 'common', 'ceil' or 'floor'");
  const double scale = std::pow(10.0, static_cast<double>(precision));
  return Value::number((method == "ceil" ? std::ceil(x * scale) : std::floor(x * scale)) / scale);
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (const char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace

bool is_known_filter(const std::string& name) { return filter_names().count(name) != 0; }
bool is_known_test(const std::string& name) { return test_names().count(name) != 0; }

Value apply_filter(Env& env, const std::string& name, const Value& input, const CallArgs& a) {
  if (name == "default" || name == "d") {
    const Value* fallback = a.get(0, "default_value");
    const bool boolean = arg_bool(a, 1, "boolean", false);
    if (input.is_undefined() || (boolean && !truthy(input))) return fallback ? *fallback : Value::string("");
    return input;
  }
  if (name == "safe") return input.is_string() ? input : Value::string(str_of(env, input));
  if (name == "string") return Value::string(str_of(env, input));
  if (name == "trim") {
    const Value* chars = a.get(0, "chars");
    const std::string* set = (chars != nullptr && chars->is_string()) ? &chars->as_string() : nullptr;
    return Value::string(text::strip(str_of(env, input), true, true, set));
  }
  if (name == "upper") return Value::string(text::upper(str_of(env, input)));
  if (name == "center") {
    // str.center(width): extra padding goes to the right when the text's length is even... as Python does.
    const std::string s = str_of(env, input);
    const Value* w = a.get(0, "width");
    const int64_t width = w == nullptr ? 80 : std::min<int64_t>(w->as_int(), static_cast<int64_t>(env.max_string));
    const auto n = static_cast<int64_t>(text::char_count(s));
    if (width <= n) return Value::string(s);
    const int64_t pad = width - n;
    const int64_t left = pad / 2 + (pad & width & 1);
    return Value::string(std::string(static_cast<size_t>(left), ' ') + s +
                         std::string(static_cast<size_t>(pad - left), ' '));
  }
  if (name == "lower") return Value::string(text::lower(str_of(env, input)));
  if (name == "capitalize") return Value::string(text::capitalize(str_of(env, input)));
  if (name == "title") return Value::string(text::jinja_title(str_of(env, input)));
  if (name == "escape" || name == "e") return Value::string(html_escape(str_of(env, input)));
  if (name == "length" || name == "count") return Value::integer(length(input));
  if (name == "wordcount")
    return Value::integer(static_cast<int64_t>(text::split(str_of(env, input), nullptr, -1).size()));
  if (name == "tojson") return tojson(env, input, a);
  if (name == "indent") return Value::string(indent_filter(env, str_of(env, input), a));
  if (name == "replace") {
    const Value* from = a.get(0, "old");
    const Value* to = a.get(1, "new");
    if (from == nullptr || to == nullptr) fail("replace: old and new are required");
    const Value* count = a.get(2, "count");
    std::string r = text::replace(str_of(env, input), str_of(env, *from), str_of(env, *to),
                                  count == nullptr || count->is_none() ? -1 : count->as_int());
    if (r.size() > env.max_string) fail("string exceeds the output limit");
    return Value::string(std::move(r));
  }
  if (name == "format") {
    std::vector<Value> items = a.args;
    return Value::string(percent_format(env, str_of(env, input), make_list(env, std::move(items), true)));
  }
  if (name == "int") {
    const Value* fallback = a.get(0, "default");
    return to_int(input, fallback ? *fallback : Value::integer(0));
  }
  if (name == "float") {
    const Value* fallback = a.get(0, "default");
    return to_float(input, fallback ? *fallback : Value::number(0.0));
  }
  if (name == "round") return round_filter(input, a);
  if (name == "abs") {
    if (input.is_integral()) {
      if (input.as_int() == INT64_MIN) fail("integer overflow");
      return Value::integer(input.as_int() < 0 ? -input.as_int() : input.as_int());
    }
    if (input.kind() == Kind::kFloat) return Value::number(std::fabs(input.as_double()));
    fail("bad operand type for abs(): '" + type_name(input) + "'");
  }
  if (name == "attr") {
    const Value* n = a.get(0, "name");
    if (n == nullptr || !n->is_string()) fail("attr: a name is required");
    return get_attr(env, input, n->as_string());
  }
  if (name == "items") {
    if (input.is_undefined()) return make_list(env, {});
    if (!input.is_dict() || input.as_dict()->is_namespace) fail("can only get item pairs from a mapping");
    std::vector<Value> items;
    for (const auto& [k, v] : input.as_dict()->entries) items.push_back(make_list(env, {Value::string(k), v}, true));
    return make_list(env, std::move(items));
  }
  if (name == "dictsort") {
    if (!input.is_dict()) fail("dictsort: a mapping is required");
    const bool cs = arg_bool(a, 0, "case_sensitive", false);
    const Value* by = a.get(1, "by");
    const bool by_value = by != nullptr && by->is_string() && by->as_string() == "value";
    const bool reverse = arg_bool(a, 2, "reverse", false);
    std::vector<Value> items;
    for (const auto& [k, v] : input.as_dict()->entries) items.push_back(make_list(env, {Value::string(k), v}, true));
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
      const Value kx = sort_key(env, x.as_list()->items[by_value ? 1 : 0], nullptr, cs);
      const Value ky = sort_key(env, y.as_list()->items[by_value ? 1 : 0], nullptr, cs);
      return reverse ? compare(ky, kx) < 0 : compare(kx, ky) < 0;
    });
    return make_list(env, std::move(items));
  }
  if (name == "join") {
    const Value* sep = a.get(0, "d");
    const Value* attribute = a.get(1, "attribute");
    const std::string d = sep == nullptr ? "" : str_of(env, *sep);
    std::string out;
    bool first = true;
    for (const Value& item : iterate(input)) {
      if (!first) out += d;
      first = false;
      out += str_of(env, attribute ? attr_path(env, item, str_of(env, *attribute)) : item);
      if (out.size() > env.max_string) fail("string exceeds the output limit");
    }
    return Value::string(std::move(out));
  }
  if (name == "list") return make_list(env, iterate(input));
  if (name == "first" || name == "last") {
    std::vector<Value> items = iterate(input);
    if (items.empty()) return Value::undefined(std::string("No ") + name + " item, sequence was empty.");
    return name == "first" ? items.front() : items.back();
  }
  if (name == "reverse") {
    if (input.is_string()) {
      std::vector<Value> chars = iterate(input);
      std::string out;
      for (auto it = chars.rbegin(); it != chars.rend(); ++it) out += it->as_string();
      return Value::string(std::move(out));
    }
    std::vector<Value> items = iterate(input);
    std::reverse(items.begin(), items.end());
    return make_list(env, std::move(items));
  }
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
    return select_like(env, name, input, a);
  }
  if (name == "map") return map_filter(env, input, a);
  if (name == "unique") {
    const bool cs = arg_bool(a, 0, "case_sensitive", false);
    const Value* attribute = a.get(1, "attribute");
    std::vector<Value> out;
    std::vector<Value> seen;
    for (const Value& item : iterate(input)) {
      const Value key = sort_key(env, item, attribute, cs);
      if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, key); })) continue;
      seen.push_back(key);
      out.push_back(item);
    }
    return make_list(env, std::move(out));
  }
  if (name == "sort") {
    const bool reverse = arg_bool(a, 0, "reverse", false);
    const bool cs = arg_bool(a, 1, "case_sensitive", false);
    const Value* attribute = a.get(2, "attribute");
    std::vector<Value> items = iterate(input);
    std::vector<std::pair<Value, Value>> keyed;
    for (const Value& item : items) keyed.emplace_back(sort_key(env, item, attribute, cs), item);
    std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
      return reverse ? compare(y.first, x.first) < 0 : compare(x.first, y.first) < 0;
    });
    items.clear();
    for (auto& kv : keyed) items.push_back(kv.second);
    return make_list(env, std::move(items));
  }
  if (name == "min" || name == "max") {
    const bool cs = arg_bool(a, 0, "case_sensitive", false);
    const Value* attribute = a.get(1, "attribute");
    std::vector<Value> items = iterate(input);
    if (items.empty()) return Value::undefined(std::string("No ") + name + " item, sequence was empty.");
    Value best = items[0];
    for (size_t i = 1; i < items.size(); ++i) {
      const int c = compare(sort_key(env, items[i], attribute, cs), sort_key(env, best, attribute, cs));
      if (name == "min" ? c < 0 : c > 0) best = items[i];
    }
    return best;
  }
  if (name == "sum") {
    const Value* attribute = a.get(0, "attribute");
    const Value* start = a.get(1, "start");
    Value total = start ? *start : Value::integer(0);
    for (const Value& item : iterate(input)) {
      total = binary_op(env, "+", total, attribute ? attr_path(env, item, str_of(env, *attribute)) : item);
    }
    return total;
  }
  fail("no filter named '" + name + "'");
}

bool apply_test(Env& env, const std::string& name, const Value& v, const CallArgs& a) {
  const Value* other = a.get(0, "b");
  auto need_other = [&]() -> const Value& {
    if (other == nullptr) fail("test '" + name + "' needs an argument");
    return *other;
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "true") return v.kind() == Kind::kBool && v.as_bool();
  if (name == "false") return v.kind() == Kind::kBool && !v.as_bool();
  if (name == "boolean") return v.kind() == Kind::kBool;
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.kind() == Kind::kInt;
  if (name == "float") return v.kind() == Kind::kFloat;
  if (name == "mapping") return v.is_dict() && !v.as_dict()->is_namespace;
  if (name == "iterable")
    return v.is_undefined() || v.is_string() || v.is_list() || (v.is_dict() && !v.as_dict()->is_namespace);
  if (name == "sequence")
    return v.is_undefined() || v.is_string() || v.is_list() || (v.is_dict() && !v.as_dict()->is_namespace);
  if (name == "callable") return v.kind() == Kind::kCallable;
  if (name == "escaped") return false;
  if (name == "lower")
    return v.is_string() && text::lower(v.as_string()) == v.as_string() && text::upper(v.as_string()) != v.as_string();
  if (name == "upper")
    return v.is_string() && text::upper(v.as_string()) == v.as_string() && text::lower(v.as_string()) != v.as_string();
  if (name == "odd" || name == "even") {
    if (!v.is_integral()) fail("test '" + name + "' needs an integer, got " + type_name(v));
    return (v.as_int() % 2 != 0) == (name == "odd");
  }
  if (name == "divisibleby") {
    const Value& d = need_other();
    if (!v.is_integral() || !d.is_integral() || d.as_int() == 0) fail("divisibleby needs non-zero integers");
    return d.as_int() == -1 || v.as_int() % d.as_int() == 0;
  }
  if (name == "eq" || name == "equalto" || name == "==") return equals(v, need_other());
  if (name == "ne" || name == "!=") return !equals(v, need_other());
  if (name == "lt" || name == "lessthan" || name == "<") return compare(v, need_other()) < 0;
  if (name == "le" || name == "<=") return compare(v, need_other()) <= 0;
  if (name == "gt" || name == "greaterthan" || name == ">") return compare(v, need_other()) > 0;
  if (name == "ge" || name == ">=") return compare(v, need_other()) >= 0;
  if (name == "in") return contains(v, need_other());
  if (name == "sameas") {
    const Value& o = need_other();
    if (v.kind() != o.kind()) return false;
    if (v.is_list() || v.is_dict() || v.kind() == Kind::kCallable) return v.as_list() == o.as_list();
    return equals(v, o);
  }
  if (name == "filter") return v.is_string() && is_known_filter(v.as_string());
  if (name == "test") return v.is_string() && is_known_test(v.as_string());
  (void)env;
  fail("no test named '" + name + "'");
}

}  // namespace rf::chat
