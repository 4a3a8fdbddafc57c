// Attribute/item access, methods of str/dict/list, operators and global functions.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>

#include "chat/builtins.h"
#include "chat/text_util.h"

namespace rf::chat {

namespace {

const std::set<std::string>& string_methods() {
  static const std::set<std::string> k = {"strip",   "lstrip",     "rstrip",  "startswith", "endswith", "split",
                                          "rsplit",  "splitlines", "upper",   "lower",      "title",    "capitalize",
                                          "replace", "format",     "join",    "find",       "rfind",    "count",
                                          "isdigit", "isalpha",    "isalnum", "isspace",    "islower",  "isupper"};
  return k;
}
const std::set<std::string>& dict_methods() {
  static const std::set<std::string> k = {"items", "keys", "values", "get"};
  return k;
}
const std::set<std::string>& list_methods() {
  static const std::set<std::string> k = {"append", "extend", "pop", "index", "count", "insert"};
  return k;
}

std::string object_repr(const Value& v) {
  if (v.is_none()) return "None";
  return type_name(v) + " object";
}

// "'dict object' has no attribute 'x'" (built by appending: GCC 12 misreports operator+ chains here).
Value missing(const Value& obj, const char* what, const std::string& detail) {
  std::string m = "'";
  m += object_repr(obj);
  m += "' has no ";
  m += what;
  m += detail;
  return Value::undefined(std::move(m));
}

Value bound_method(Env& env, const Value& self, const std::string& name) {
  Callable* c = env.arena->new_callable();
  c->type = Callable::Type::kMethod;
  c->name = name;
  c->self = self;
  return Value::callable(c);
}

int64_t to_index(const Value& v, const char* what) {
  if (v.is_integral()) return v.as_int();
  if (v.is_none()) return 0;
  fail(std::string(what) + " must be an integer, got " + type_name(v));
}

const std::string& want_string(const Value& v, const char* what) {
  if (!v.is_string()) {
    if (v.is_undefined()) v.raise_undefined();
    fail(std::string(what) + " must be a string, got " + type_name(v));
  }
  return v.as_string();
}

// The result of an overflow-checked builtin. `r` is taken by reference so that it is read only after the builtin
// stored it, whatever order the compiler evaluates the call's arguments in (clang: left to right).
int64_t checked(bool overflow, const int64_t& r) {
  if (overflow) fail("integer overflow");
  return r;
}

std::string repeat(Env& env, const std::string& s, int64_t n) {
  if (n <= 0 || s.empty()) return "";
  if (static_cast<uint64_t>(n) > env.max_string / s.size()) fail("string repetition exceeds the output limit");
  std::string out;
  out.reserve(s.size() * static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out += s;
  return out;
}

Value string_method(Env& env, const std::string& s, const std::string& name, const CallArgs& a) {
  auto str_arg = [&](size_t pos, const char* key) -> const std::string* {
    const Value* v = a.get(pos, key);
    if (v == nullptr || v->is_none()) return nullptr;
    return &want_string(*v, key);
  };
  auto int_arg = [&](size_t pos, const char* key, int64_t fallback) {
    const Value* v = a.get(pos, key);
    return v == nullptr ? fallback : to_index(*v, key);
  };
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    return Value::string(text::strip(s, name != "rstrip", name != "lstrip", str_arg(0, "chars")));
  }
  if (name == "startswith" || name == "endswith") {
    const Value* p = a.get(0, "prefix");
    if (p == nullptr) fail(name + "() takes at least 1 argument");
    std::vector<Value> options = p->is_list() ? p->as_list()->items : std::vector<Value>{*p};
    for (const Value& o : options) {
      const std::string& x = want_string(o, "prefix");
      const bool hit = name == "startswith"
                           ? s.compare(0, x.size(), x) == 0
                           : (s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0);
      if (hit) return Value::boolean(true);
    }
    return Value::boolean(false);
  }
  if (name == "split" || name == "rsplit") {
    const std::string* sep = str_arg(0, "sep");
    if (sep != nullptr && sep->empty()) fail("empty separator");
    const int64_t maxsplit = int_arg(1, "maxsplit", -1);
    std::vector<std::string> parts = name == "split" ? text::split(s, sep, maxsplit) : text::rsplit(s, sep, maxsplit);
    std::vector<Value> items;
    for (auto& p : parts) items.push_back(Value::string(std::move(p)));
    return make_list(env, std::move(items));
  }
  if (name == "splitlines") {
    std::vector<Value> items;
    for (auto& p : text::splitlines(s)) items.push_back(Value::string(std::move(p)));
    return make_list(env, std::move(items));
  }
  if (name == "upper") return Value::string(text::upper(s));
  if (name == "lower") return Value::string(text::lower(s));
  if (name == "title") return Value::string(text::py_title(s));
  if (name == "capitalize") return Value::string(text::capitalize(s));
  if (name == "replace") {
    const std::string* from = str_arg(0, "old");
    const std::string* to = str_arg(1, "new");
    if (from == nullptr || to == nullptr) fail("replace() takes at least 2 arguments");
    std::string r = text::replace(s, *from, *to, int_arg(2, "count", -1));
    if (r.size() > env.max_string) fail("string exceeds the output limit");
    return Value::string(std::move(r));
  }
  if (name == "join") {
    const Value* it = a.get(0, "iterable");
    if (it == nullptr) fail("join() takes exactly one argument");
    std::string out;
    bool first = true;
    for (const Value& v : iterate(*it)) {
      if (!first) out += s;
      first = false;
      out += want_string(v, "sequence item");
      if (out.size() > env.max_string) fail("string exceeds the output limit");
    }
    return Value::string(std::move(out));
  }
  if (name == "find" || name == "rfind" || name == "count") {
    const std::string* sub = str_arg(0, "sub");
    if (sub == nullptr) fail(name + "() takes at least 1 argument");
    if (name == "count") {
      if (sub->empty()) return Value::integer(static_cast<int64_t>(text::char_count(s)) + 1);
      int64_t n = 0;
      for (size_t p = s.find(*sub); p != std::string::npos; p = s.find(*sub, p + sub->size())) ++n;
      return Value::integer(n);
    }
    const size_t p = name == "find" ? s.find(*sub) : s.rfind(*sub);
    if (p == std::string::npos) return Value::integer(-1);
    return Value::integer(static_cast<int64_t>(text::char_count(std::string_view(s).substr(0, p))));
  }
  if (name == "format") {
    // str.format with {} / {0} / {name} fields (no format specs).
    std::string out;
    size_t auto_index = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '{' && i + 1 < s.size() && s[i + 1] == '{') {
        out += '{';
        ++i;
      } else if (s[i] == '}' && i + 1 < s.size() && s[i + 1] == '}') {
        out += '}';
        ++i;
      } else if (s[i] == '{') {
        const size_t close = s.find('}', i);
        if (close == std::string::npos) fail("single '{' encountered in format string");
        const std::string field = s.substr(i + 1, close - i - 1);
        const Value* v = nullptr;
        if (field.empty()) {
          v = auto_index < a.args.size() ? &a.args[auto_index] : nullptr;
          ++auto_index;
        } else if (std::all_of(field.begin(), field.end(), [](char c) { return c >= '0' && c <= '9'; })) {
          const size_t idx = std::stoul(field.substr(0, 9));
          v = idx < a.args.size() ? &a.args[idx] : nullptr;
        } else {
          for (const auto& [k, kv] : a.kwargs) {
            if (k == field) v = &kv;
          }
        }
        if (v == nullptr) fail("format(): no argument for field '{" + field + "}'");
        out += to_str(*v, env.max_string);
        i = close;
      } else {
        out += s[i];
      }
      if (out.size() > env.max_string) fail("string exceeds the output limit");
    }
    return Value::string(std::move(out));
  }
  // Character class predicates (ASCII classes; non-ASCII characters count as letters).
  if (s.empty()) return Value::boolean(false);
  bool all = true;
  bool any_cased = false;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    const bool digit = c >= '0' && c <= '9';
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
    if (name == "isdigit") all = all && digit;
    if (name == "isalpha") all = all && alpha;
    if (name == "isalnum") all = all && (alpha || digit);
    if (name == "isspace") all = all && text::is_space(c);
    if (name == "islower") {
      all = all && !(c >= 'A' && c <= 'Z');
      any_cased = any_cased || (c >= 'a' && c <= 'z');
    }
    if (name == "isupper") {
      all = all && !(c >= 'a' && c <= 'z');
      any_cased = any_cased || (c >= 'A' && c <= 'Z');
    }
  }
  if (name == "islower" || name == "isupper") all = all && any_cased;
  return Value::boolean(all);
}

Value dict_method(Env& env, Dict* d, const std::string& name, const CallArgs& a) {
  if (name == "get") {
    const Value* key = a.get(0, "key");
    if (key == nullptr) fail("get() takes at least 1 argument");
    const Value* fallback = a.get(1, "default");
    const Value* hit = key->is_string() ? d->find(key->as_string()) : nullptr;
    if (hit != nullptr) return *hit;
    return fallback != nullptr ? *fallback : Value::none();
  }
  std::vector<Value> items;
  env.arena->charge(d->entries.size());
  for (const auto& [k, v] : d->entries) {
    if (name == "keys") {
      items.push_back(Value::string(k));
    } else if (name == "values") {
      items.push_back(v);
    } else {
      items.push_back(make_list(env, {Value::string(k), v}, true));
    }
  }
  return make_list(env, std::move(items));
}

Value list_method(Env& env, List* l, const std::string& name, const CallArgs& a) {
  auto& items = l->items;
  if (l->is_tuple && name != "index" && name != "count") fail("'tuple' object has no attribute '" + name + "'");
  const Value* x = a.get(0, "x");
  if (name == "append") {
    if (x == nullptr) fail("append() takes exactly one argument");
    env.arena->charge(1);
    items.push_back(*x);
    return Value::none();
  }
  if (name == "extend") {
    if (x == nullptr) fail("extend() takes exactly one argument");
    std::vector<Value> more = iterate(*x);
    env.arena->charge(more.size());
    items.insert(items.end(), more.begin(), more.end());
    return Value::none();
  }
  if (name == "pop") {
    if (items.empty()) fail("pop from empty list");
    int64_t i = x == nullptr ? -1 : to_index(*x, "index");
    const auto n = static_cast<int64_t>(items.size());
    if (i < 0) i += n;
    if (i < 0 || i >= n) fail("pop index out of range");
    Value v = items[static_cast<size_t>(i)];
    items.erase(items.begin() + i);
    return v;
  }
  if (name == "insert") {
    const Value* v = a.get(1, "object");
    if (x == nullptr || v == nullptr) fail("insert() takes exactly 2 arguments");
    const auto n = static_cast<int64_t>(items.size());
    int64_t i = to_index(*x, "index");
    if (i < 0) i = std::max<int64_t>(0, i + n);
    i = std::min(i, n);
    env.arena->charge(1);
    items.insert(items.begin() + i, *v);
    return Value::none();
  }
  if (x == nullptr) fail(name + "() takes exactly one argument");
  int64_t count = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    if (!equals(items[i], *x)) continue;
    if (name == "index") return Value::integer(static_cast<int64_t>(i));
    ++count;
  }
  if (name == "index") fail(to_repr(*x, 200) + " is not in list");
  return Value::integer(count);
}

// Python's slice.indices(): normalised start/stop for a sequence of length n.
void slice_bounds(int64_t n, const Value* start, const Value* stop, int64_t step, int64_t* lo, int64_t* hi) {
  auto clamp = [&](const Value* v, int64_t fallback) {
    if (v == nullptr || v->is_none()) return fallback;
    int64_t i = to_index(*v, "slice index");
    if (i < 0) {
      i += n;
      if (i < 0) i = step < 0 ? -1 : 0;
    } else if (i >= n) {
      i = step < 0 ? n - 1 : n;
    }
    return i;
  };
  *lo = clamp(start, step < 0 ? n - 1 : 0);
  *hi = clamp(stop, step < 0 ? -1 : n);
}

std::string strftime_value(const Env& env, const std::string& fmt) {
  std::tm tm{};
  if (env.now) {
    tm = *env.now;
  } else {
    const std::time_t t = std::time(nullptr);
    localtime_r(&t, &tm);
  }
  if (fmt.empty()) return "";
  std::string buf(256 + fmt.size() * 16, '\0');
  const size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &tm);
  buf.resize(n);
  return buf;
}

}  // namespace

const Value* CallArgs::get(size_t pos, const char* name) const {
  if (pos < args.size()) return &args[pos];
  for (const auto& [k, v] : kwargs) {
    if (k == name) return &v;
  }
  return nullptr;
}

Value make_list(Env& env, std::vector<Value> items, bool is_tuple) {
  List* l = env.arena->new_list();
  env.arena->charge(items.size());
  l->items = std::move(items);
  l->is_tuple = is_tuple;
  return Value::list(l);
}

Value get_attr(Env& env, const Value& obj, const std::string& name) {
  switch (obj.kind()) {
    case Kind::kUndefined:
      obj.raise_undefined();
    case Kind::kDict: {
      const Dict* d = obj.as_dict();
      if (!d->is_namespace && dict_methods().count(name) != 0) return bound_method(env, obj, name);
      if (const Value* v = d->find(name)) return *v;
      break;
    }
    case Kind::kString:
      if (string_methods().count(name) != 0) return bound_method(env, obj, name);
      break;
    case Kind::kList:
      if (list_methods().count(name) != 0) return bound_method(env, obj, name);
      break;
    default:
      break;
  }
  return missing(obj, "attribute ", "'" + name + "'");
}

Value get_item(Env& env, const Value& obj, const Value& key) {
  switch (obj.kind()) {
    case Kind::kUndefined:
      obj.raise_undefined();
    case Kind::kDict:
      if (key.is_string()) {
        if (const Value* v = obj.as_dict()->find(key.as_string())) return *v;
        return get_attr(env, obj, key.as_string());
      }
      break;
    case Kind::kList:
    case Kind::kString: {
      if (key.is_string()) return get_attr(env, obj, key.as_string());
      if (!key.is_integral()) break;
      int64_t i = key.as_int();
      if (obj.is_list()) {
        const auto& items = obj.as_list()->items;
        const auto n = static_cast<int64_t>(items.size());
        if (i < 0) i += n;
        if (i >= 0 && i < n) return items[static_cast<size_t>(i)];
      } else {
        const std::vector<size_t> offs = text::char_offsets(obj.as_string());
        const auto n = static_cast<int64_t>(offs.size()) - 1;
        if (i < 0) i += n;
        if (i >= 0 && i < n) {
          const auto u = static_cast<size_t>(i);
          return Value::string(obj.as_string().substr(offs[u], offs[u + 1] - offs[u]));
        }
      }
      return missing(obj, "element ", to_repr(key, 100));
    }
    default:
      break;
  }
  if (key.is_string()) return get_attr(env, obj, key.as_string());
  return missing(obj, "element ", to_repr(key, 100));
}

Value get_slice(Env& env, const Value& obj, const Value* start, const Value* stop, const Value* step_v) {
  if (obj.is_undefined()) obj.raise_undefined();
  const int64_t step = (step_v == nullptr || step_v->is_none()) ? 1 : to_index(*step_v, "slice step");
  if (step == 0) fail("slice step cannot be zero");
  if (!obj.is_list() && !obj.is_string()) return missing(obj, "slicing", "");
  std::vector<size_t> offs;
  int64_t n = 0;
  if (obj.is_list()) {
    n = static_cast<int64_t>(obj.as_list()->items.size());
  } else {
    offs = text::char_offsets(obj.as_string());
    n = static_cast<int64_t>(offs.size()) - 1;
  }
  int64_t lo = 0;
  int64_t hi = 0;
  slice_bounds(n, start, stop, step, &lo, &hi);
  std::vector<size_t> picked;
  for (int64_t i = lo; step > 0 ? i < hi : i > hi; i += step) picked.push_back(static_cast<size_t>(i));
  if (obj.is_list()) {
    std::vector<Value> items;
    for (const size_t i : picked) items.push_back(obj.as_list()->items[i]);
    return make_list(env, std::move(items), obj.as_list()->is_tuple);
  }
  std::string out;
  for (const size_t i : picked) out += obj.as_string().substr(offs[i], offs[i + 1] - offs[i]);
  return Value::string(std::move(out));
}

Value call_method(Env& env, const Callable& fn, const CallArgs& args) {
  const Value& self = fn.self;
  if (self.is_string()) return string_method(env, self.as_string(), fn.name, args);
  if (self.is_dict()) return dict_method(env, self.as_dict(), fn.name, args);
  if (self.is_list()) return list_method(env, self.as_list(), fn.name, args);
  if (fn.name == "cycle" && self.is_integral()) {  // loop.cycle, bound to the iteration's index0
    if (args.args.empty()) fail("no items for cycling given");
    return args.args[static_cast<size_t>(self.as_int()) % args.args.size()];
  }
  fail("'" + fn.name + "' is not callable");
}

const std::vector<std::string>& global_names() {
  static const std::vector<std::string> k = {"range", "namespace", "dict", "raise_exception", "strftime_now"};
  return k;
}

Value call_global(Env& env, const std::string& name, const CallArgs& a) {
  if (name == "raise_exception") {
    const Value* msg = a.get(0, "message");
    fail(msg == nullptr ? std::string("raise_exception() called") : to_str(*msg, env.max_string));
  }
  if (name == "strftime_now") {
    const Value* fmt = a.get(0, "format");
    if (fmt == nullptr) fail("strftime_now() takes exactly one argument");
    return Value::string(strftime_value(env, want_string(*fmt, "format")));
  }
  if (name == "range") {
    if (a.args.empty() || a.args.size() > 3)
      fail("range expected 1 to 3 arguments, got " + std::to_string(a.args.size()));
    int64_t start = 0;
    int64_t stop = 0;
    int64_t step = 1;
    if (a.args.size() == 1) {
      stop = to_index(a.args[0], "range() argument");
    } else {
      start = to_index(a.args[0], "range() argument");
      stop = to_index(a.args[1], "range() argument");
      if (a.args.size() == 3) step = to_index(a.args[2], "range() argument");
    }
    if (step == 0) fail("range() arg 3 must not be zero");
    std::vector<Value> items;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      if (items.size() % 4096 == 0) env.arena->charge(4096);
      items.push_back(Value::integer(i));
      if (step > 0 ? i > std::numeric_limits<int64_t>::max() - step : i < std::numeric_limits<int64_t>::min() - step) {
        break;
      }
    }
    return make_list(env, std::move(items));
  }
  // namespace(...) and dict(...): a mapping argument and/or keyword arguments.
  Dict* d = env.arena->new_dict();
  d->is_namespace = name == "namespace";
  if (!a.args.empty()) {
    if (a.args.size() > 1 || !a.args[0].is_dict()) fail(name + "() takes at most one mapping argument");
    for (const auto& [k, v] : a.args[0].as_dict()->entries) d->set(k, v);
  }
  env.arena->charge(a.kwargs.size());
  for (const auto& [k, v] : a.kwargs) d->set(k, v);
  return Value::dict(d);
}

bool contains(const Value& needle, const Value& hay) {
  switch (hay.kind()) {
    case Kind::kUndefined:
      return false;
    case Kind::kString:
      if (!needle.is_string()) fail("'in <string>' requires string as left operand, not " + type_name(needle));
      return hay.as_string().find(needle.as_string()) != std::string::npos;
    case Kind::kList:
      for (const Value& v : hay.as_list()->items) {
        if (equals(needle, v)) return true;
      }
      return false;
    case Kind::kDict:
      if (hay.as_dict()->is_namespace) break;
      return needle.is_string() && hay.as_dict()->find(needle.as_string()) != nullptr;
    default:
      break;
  }
  fail("argument of type '" + type_name(hay) + "' is not iterable");
}

Value binary_op(Env& env, const std::string& op, const Value& a, const Value& b) {
  if (op == "~") {
    std::string s = to_str(a, env.max_string) + to_str(b, env.max_string);
    if (s.size() > env.max_string) fail("string exceeds the output limit");
    return Value::string(std::move(s));
  }
  if (a.is_undefined()) a.raise_undefined();
  if (b.is_undefined()) b.raise_undefined();
  if (a.is_number() && b.is_number()) {
    const bool ints = a.is_integral() && b.is_integral();
    const int64_t x = a.as_int();
    const int64_t y = b.as_int();
    const double fx = a.as_double();
    const double fy = b.as_double();
    int64_t r = 0;
    if (op == "+") return ints ? Value::integer(checked(__builtin_add_overflow(x, y, &r), r)) : Value::number(fx + fy);
    if (op == "-") return ints ? Value::integer(checked(__builtin_sub_overflow(x, y, &r), r)) : Value::number(fx - fy);
    if (op == "*") return ints ? Value::integer(checked(__builtin_mul_overflow(x, y, &r), r)) : Value::number(fx * fy);
    if (op == "/") {
      if (fy == 0) fail("division by zero");
      return Value::number(fx / fy);
    }
    if (op == "//" || op == "%") {
      if (ints) {
        if (y == 0) fail("integer division or modulo by zero");
        if (x == std::numeric_limits<int64_t>::min() && y == -1) fail("integer overflow");
        int64_t q = x / y;
        int64_t m = x % y;
        if (m != 0 && ((m < 0) != (y < 0))) {
          --q;
          m += y;
        }
        return Value::integer(op == "//" ? q : m);
      }
      if (fy == 0) fail("float division by zero");
      double m = std::fmod(fx, fy);
      if (m != 0 && ((m < 0) != (fy < 0))) m += fy;
      return Value::number(op == "//" ? std::floor(fx / fy) : m);
    }
    if (op == "**") {
      if (ints && y >= 0) {
        int64_t acc = 1;
        for (int64_t i = 0; i < y; ++i) {
          if (__builtin_mul_overflow(acc, x, &acc)) fail("integer overflow");
          if (acc == 0 || acc == 1) break;
          if (acc == -1) {
            acc = ((y - i - 1) % 2 == 0) ? -1 : 1;
            break;
          }
        }
        return Value::integer(acc);
      }
      if (fx == 0 && fy < 0) fail("0.0 cannot be raised to a negative power");
      return Value::number(std::pow(fx, fy));
    }
  }
  if (op == "+" && a.is_string() && b.is_string()) {
    if (a.as_string().size() + b.as_string().size() > env.max_string) fail("string exceeds the output limit");
    return Value::string(a.as_string() + b.as_string());
  }
  if (op == "+" && a.is_list() && b.is_list() && a.as_list()->is_tuple == b.as_list()->is_tuple) {
    std::vector<Value> items = a.as_list()->items;
    items.insert(items.end(), b.as_list()->items.begin(), b.as_list()->items.end());
    return make_list(env, std::move(items), a.as_list()->is_tuple);
  }
  if (op == "*" && (a.is_string() || a.is_list()) && b.is_integral()) return binary_op(env, op, b, a);
  if (op == "*" && a.is_integral() && b.is_string()) return Value::string(repeat(env, b.as_string(), a.as_int()));
  if (op == "*" && a.is_integral() && b.is_list()) {
    const auto& src = b.as_list()->items;
    std::vector<Value> items;
    for (int64_t i = 0; i < a.as_int() && !src.empty(); ++i) {
      env.arena->charge(src.size());
      items.insert(items.end(), src.begin(), src.end());
    }
    return make_list(env, std::move(items), b.as_list()->is_tuple);
  }
  if (op == "%" && a.is_string()) return Value::string(percent_format(env, a.as_string(), b));
  fail("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" + type_name(b) + "'");
}

std::string percent_format(Env& env, const std::string& fmt, const Value& args) {
  std::vector<Value> values =
      (args.is_list() && args.as_list()->is_tuple) ? args.as_list()->items : std::vector<Value>{args};
  size_t next = 0;
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (++i >= fmt.size()) fail("incomplete format");
    std::string spec = "%";
    while (i < fmt.size() && std::string("-+ #0123456789.").find(fmt[i]) != std::string::npos) spec += fmt[i++];
    if (i >= fmt.size()) fail("incomplete format");
    const char conv = fmt[i];
    if (conv == '%') {
      out += '%';
      continue;
    }
    if (next >= values.size()) fail("not enough arguments for format string");
    const Value& v = values[next++];
    if (spec.size() > 12) fail("format specification too long");
    char buf[512];
    if (conv == 's' || conv == 'r') {
      out += conv == 's' ? to_str(v, env.max_string) : to_repr(v, env.max_string);
    } else if (conv == 'd' || conv == 'i') {
      if (!v.is_number()) fail("%d format: a number is required, not " + type_name(v));
      std::snprintf(buf, sizeof(buf), (spec + "lld").c_str(),
                    static_cast<long long>(v.is_integral() ? v.as_int() : static_cast<int64_t>(v.as_double())));
      out += buf;
    } else if (conv == 'f' || conv == 'e' || conv == 'g' || conv == 'x' || conv == 'X' || conv == 'o') {
      if (!v.is_number()) fail(std::string("%") + conv + " format: a number is required, not " + type_name(v));
      if (conv == 'x' || conv == 'X' || conv == 'o') {
        std::snprintf(buf, sizeof(buf), (spec + "ll" + conv).c_str(), static_cast<long long>(v.as_int()));
      } else {
        std::snprintf(buf, sizeof(buf), (spec + conv).c_str(), v.as_double());
      }
      out += buf;
    } else {
      fail(std::string("unsupported format character '") + conv + "'");
    }
    if (out.size() > env.max_string) fail("string exceeds the output limit");
  }
  if (next < values.size()) fail("not all arguments converted during string formatting");
  return out;
}

}  // namespace rf::chat
