#include "chat/value.h"

#include <algorithm>
#include <cmath>

#include "chat/text_util.h"

namespace rf::chat {

namespace {
constexpr int kMaxDepth = 200;  // nesting bound for printing/comparing values (cycles, hostile data)

void check_depth(int depth) {
  if (depth > kMaxDepth) fail("value nesting deeper than 200 levels (circular reference?)");
}
}  // namespace

void fail(std::string message) { throw RenderError{std::move(message), 0}; }

Value Value::undefined(std::string hint) {
  Value v;
  v.s_ = std::move(hint);
  return v;
}
Value Value::none() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}
Value Value::boolean(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.i_ = b ? 1 : 0;
  return v;
}
Value Value::integer(int64_t i) {
  Value v;
  v.kind_ = Kind::kInt;
  v.i_ = i;
  return v;
}
Value Value::number(double f) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.f_ = f;
  return v;
}
Value Value::string(std::string s) {
  Value v;
  v.kind_ = Kind::kString;
  v.s_ = std::move(s);
  return v;
}
Value Value::list(List* l) {
  Value v;
  v.kind_ = Kind::kList;
  v.p_ = l;
  return v;
}
Value Value::dict(Dict* d) {
  Value v;
  v.kind_ = Kind::kDict;
  v.p_ = d;
  return v;
}
Value Value::callable(Callable* c) {
  Value v;
  v.kind_ = Kind::kCallable;
  v.p_ = c;
  return v;
}

void Value::raise_undefined() const { fail(s_.empty() ? std::string("value is undefined") : s_); }

const Value* Dict::find(const std::string& key) const {
  const auto it = index.find(key);
  return it == index.end() ? nullptr : &entries[it->second].second;
}

void Dict::set(const std::string& key, Value v) {
  const auto it = index.find(key);
  if (it != index.end()) {
    entries[it->second].second = std::move(v);
    return;
  }
  index.emplace(key, entries.size());
  entries.emplace_back(key, std::move(v));
}

const Value* Frame::lookup(const std::string& name) const {
  for (const Frame* f = this; f != nullptr; f = f->parent.get()) {
    const auto it = f->vars.find(name);
    if (it != f->vars.end()) return &it->second;
  }
  return nullptr;
}

List* Arena::new_list() {
  charge(1);
  lists_.push_back(std::make_unique<List>());
  return lists_.back().get();
}
Dict* Arena::new_dict() {
  charge(1);
  dicts_.push_back(std::make_unique<Dict>());
  return dicts_.back().get();
}
Callable* Arena::new_callable() {
  charge(1);
  callables_.push_back(std::make_unique<Callable>());
  return callables_.back().get();
}
void Arena::charge(size_t n) {
  n_elements_ += n;
  if (n_elements_ > max_elements_) {
    fail("template exceeded the limit of " + std::to_string(max_elements_) + " list/dict elements");
  }
}

bool truthy(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
    case Kind::kInt:
      return v.as_int() != 0;
    case Kind::kFloat:
      return v.as_double() != 0.0;
    case Kind::kString:
      return !v.as_string().empty();
    case Kind::kList:
      return !v.as_list()->items.empty();
    case Kind::kDict:
      return v.as_dict()->is_namespace || !v.as_dict()->entries.empty();
    case Kind::kCallable:
      return true;
  }
  return false;
}

namespace {

bool equals_at(const Value& a, const Value& b, int depth) {
  check_depth(depth);
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return a.as_int() == b.as_int();
    return a.as_double() == b.as_double();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::kUndefined:
    case Kind::kNone:
      return true;
    case Kind::kString:
      return a.as_string() == b.as_string();
    case Kind::kList: {
      const auto& x = a.as_list()->items;
      const auto& y = b.as_list()->items;
      if (a.as_list()->is_tuple != b.as_list()->is_tuple || x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!equals_at(x[i], y[i], depth + 1)) return false;
      }
      return true;
    }
    case Kind::kDict: {
      const Dict* x = a.as_dict();
      const Dict* y = b.as_dict();
      if (x == y) return true;
      if (x->is_namespace || y->is_namespace || x->entries.size() != y->entries.size()) return false;
      for (const auto& [k, v] : x->entries) {
        const Value* other = y->find(k);
        if (other == nullptr || !equals_at(v, *other, depth + 1)) return false;
      }
      return true;
    }
    case Kind::kCallable:
      return a.as_callable() == b.as_callable();
    default:
      return false;
  }
}

int compare_at(const Value& a, const Value& b, int depth) {
  check_depth(depth);
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return a.as_int() < b.as_int() ? -1 : (a.as_int() > b.as_int() ? 1 : 0);
    const double x = a.as_double();
    const double y = b.as_double();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    const int c = a.as_string().compare(b.as_string());  // UTF-8 byte order = code point order
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a.is_list() && b.is_list()) {
    const auto& x = a.as_list()->items;
    const auto& y = b.as_list()->items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (equals_at(x[i], y[i], depth + 1)) continue;
      return compare_at(x[i], y[i], depth + 1);
    }
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  if (a.is_undefined()) a.raise_undefined();
  if (b.is_undefined()) b.raise_undefined();
  fail("'<' not supported between instances of '" + type_name(a) + "' and '" + type_name(b) + "'");
}

void check_limit(const std::string& out, size_t limit) {
  if (out.size() > limit) fail("string longer than the output limit of " + std::to_string(limit) + " bytes");
}

void write_str(std::string& out, const Value& v, bool repr, size_t limit, int depth) {
  check_depth(depth);
  switch (v.kind()) {
    case Kind::kUndefined:
      out += repr ? "Undefined" : "";
      break;
    case Kind::kNone:
      out += "None";
      break;
    case Kind::kBool:
      out += v.as_bool() ? "True" : "False";
      break;
    case Kind::kInt:
      out += std::to_string(v.as_int());
      break;
    case Kind::kFloat:
      out += text::float_repr(v.as_double());
      break;
    case Kind::kString:
      out += repr ? text::repr(v.as_string()) : v.as_string();
      break;
    case Kind::kList: {
      const List* l = v.as_list();
      out += l->is_tuple ? '(' : '[';
      for (size_t i = 0; i < l->items.size(); ++i) {
        if (i > 0) out += ", ";
        write_str(out, l->items[i], true, limit, depth + 1);
        check_limit(out, limit);
      }
      if (l->is_tuple && l->items.size() == 1) out += ',';
      out += l->is_tuple ? ')' : ']';
      break;
    }
    case Kind::kDict: {
      const Dict* d = v.as_dict();
      out += d->is_namespace ? "<Namespace {" : "{";
      bool first = true;
      for (const auto& [k, item] : d->entries) {
        if (!first) out += ", ";
        first = false;
        out += text::repr(k);
        out += ": ";
        write_str(out, item, true, limit, depth + 1);
        check_limit(out, limit);
      }
      out += d->is_namespace ? "}>" : "}";
      break;
    }
    case Kind::kCallable:
      out += "<function " + v.as_callable()->name + ">";
      break;
  }
  check_limit(out, limit);
}

void write_json(std::string& out, const Value& v, const JsonOptions& o, size_t limit, int depth) {
  check_depth(depth);
  auto newline = [&](int level) {
    if (!o.has_indent) return;
    out += '\n';
    for (int i = 0; i < level; ++i) out += o.indent;
  };
  switch (v.kind()) {
    case Kind::kNone:
      out += "null";
      break;
    case Kind::kBool:
      out += v.as_bool() ? "true" : "false";
      break;
    case Kind::kInt:
      out += std::to_string(v.as_int());
      break;
    case Kind::kFloat: {
      const double f = v.as_double();
      if (std::isnan(f)) {
        out += "NaN";
      } else if (std::isinf(f)) {
        out += f > 0 ? "Infinity" : "-Infinity";
      } else {
        out += text::float_repr(f);
      }
      break;
    }
    case Kind::kString:
      text::json_quote(out, v.as_string(), o.ensure_ascii);
      break;
    case Kind::kList: {
      const auto& items = v.as_list()->items;
      if (items.empty()) {
        out += "[]";
        break;
      }
      out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out += o.item_sep;
        newline(depth + 1);
        write_json(out, items[i], o, limit, depth + 1);
        check_limit(out, limit);
      }
      newline(depth);
      out += ']';
      break;
    }
    case Kind::kDict: {
      const Dict* d = v.as_dict();
      if (d->is_namespace) fail("Object of type Namespace is not JSON serializable");
      if (d->entries.empty()) {
        out += "{}";
        break;
      }
      std::vector<const std::pair<std::string, Value>*> entries;
      for (const auto& e : d->entries) entries.push_back(&e);
      if (o.sort_keys) {
        std::stable_sort(entries.begin(), entries.end(), [](auto* x, auto* y) { return x->first < y->first; });
      }
      out += '{';
      for (size_t i = 0; i < entries.size(); ++i) {
        if (i > 0) out += o.item_sep;
        newline(depth + 1);
        text::json_quote(out, entries[i]->first, o.ensure_ascii);
        out += o.key_sep;
        write_json(out, entries[i]->second, o, limit, depth + 1);
        check_limit(out, limit);
      }
      newline(depth);
      out += '}';
      break;
    }
    case Kind::kUndefined:
      fail("Object of type Undefined is not JSON serializable");
    case Kind::kCallable:
      fail("Object of type function is not JSON serializable");
  }
  check_limit(out, limit);
}

}  // namespace

bool equals(const Value& a, const Value& b) { return equals_at(a, b, 0); }
int compare(const Value& a, const Value& b) { return compare_at(a, b, 0); }

std::string type_name(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kList:
      return v.as_list()->is_tuple ? "tuple" : "list";
    case Kind::kDict:
      return v.as_dict()->is_namespace ? "Namespace" : "dict";
    case Kind::kCallable:
      return "function";
  }
  return "object";
}

std::string to_str(const Value& v, size_t limit) {
  if (v.is_string()) return v.as_string();
  std::string out;
  write_str(out, v, false, limit, 0);
  return out;
}

std::string to_repr(const Value& v, size_t limit) {
  std::string out;
  write_str(out, v, true, limit, 0);
  return out;
}

std::string to_json(const Value& v, const JsonOptions& opts, size_t limit) {
  std::string out;
  write_json(out, v, opts, limit, 0);
  return out;
}

Value from_json(const nlohmann::ordered_json& j, Arena& arena, int depth) {
  check_depth(depth);
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return Value::none();
    case nlohmann::ordered_json::value_t::boolean:
      return Value::boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Value::integer(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const auto u = j.get<uint64_t>();
      if (u <= static_cast<uint64_t>(INT64_MAX)) return Value::integer(static_cast<int64_t>(u));
      return Value::number(static_cast<double>(u));
    }
    case nlohmann::ordered_json::value_t::number_float:
      return Value::number(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return Value::string(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      List* l = arena.new_list();
      arena.charge(j.size());
      for (const auto& item : j) l->items.push_back(from_json(item, arena, depth + 1));
      return Value::list(l);
    }
    case nlohmann::ordered_json::value_t::object: {
      Dict* d = arena.new_dict();
      arena.charge(j.size());
      for (const auto& [k, item] : j.items()) d->set(k, from_json(item, arena, depth + 1));
      return Value::dict(d);
    }
    default:
      return Value::none();  // binary / discarded: not produced by the JSON parser
  }
}

std::vector<Value> iterate(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return {};
    case Kind::kList:
      return v.as_list()->items;
    case Kind::kDict: {
      if (v.as_dict()->is_namespace) break;
      std::vector<Value> keys;
      for (const auto& e : v.as_dict()->entries) keys.push_back(Value::string(e.first));
      return keys;
    }
    case Kind::kString: {
      const std::string& s = v.as_string();
      const std::vector<size_t> offs = text::char_offsets(s);
      std::vector<Value> chars;
      for (size_t i = 0; i + 1 < offs.size(); ++i)
        chars.push_back(Value::string(s.substr(offs[i], offs[i + 1] - offs[i])));
      return chars;
    }
    default:
      break;
  }
  fail("'" + type_name(v) + "' object is not iterable");
}

int64_t length(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return 0;
    case Kind::kString:
      return static_cast<int64_t>(text::char_count(v.as_string()));
    case Kind::kList:
      return static_cast<int64_t>(v.as_list()->items.size());
    case Kind::kDict:
      if (v.as_dict()->is_namespace) break;
      return static_cast<int64_t>(v.as_dict()->entries.size());
    default:
      break;
  }
  fail("object of type '" + type_name(v) + "' has no len()");
}

}  // namespace rf::chat
