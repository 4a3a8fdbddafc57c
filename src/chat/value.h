// Runtime values of the template engine, with Python semantics: truthiness, equality, ordering, str()/repr(),
// json.dumps. Lists, dicts and callables live in an Arena owned by one render call; values hold plain pointers,
// so reference cycles (a list appended to itself, a namespace holding itself) cannot leak.
// Internal header of rf_chat: errors are thrown as RenderError and turned into Status at the API boundary.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace rf::chat {

struct List;
struct Dict;
struct Callable;

// A template error raised while parsing or rendering. line 0: not known yet (the interpreter fills it in).
struct RenderError {
  std::string message;
  int line = 0;
};
[[noreturn]] void fail(std::string message);

enum class Kind : uint8_t { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kCallable };

class Value {
 public:
  Value() = default;  // undefined without a hint
  // `hint` is the message raised when the undefined value is used, e.g. "'x' is undefined".
  static Value undefined(std::string hint);
  static Value none();
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value number(double f);
  static Value string(std::string s);
  static Value list(List* l);
  static Value dict(Dict* d);
  static Value callable(Callable* c);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool; }
  bool is_integral() const { return kind_ == Kind::kInt || kind_ == Kind::kBool; }

  bool as_bool() const { return i_ != 0; }
  int64_t as_int() const { return i_; }  // kInt and kBool
  double as_double() const { return kind_ == Kind::kFloat ? f_ : static_cast<double>(i_); }
  const std::string& as_string() const { return s_; }  // the string, or an undefined's hint
  List* as_list() const { return static_cast<List*>(p_); }
  Dict* as_dict() const { return static_cast<Dict*>(p_); }
  Callable* as_callable() const { return static_cast<Callable*>(p_); }

  // Raises this undefined's error (what Jinja2 does when an undefined is used in arithmetic, calls, ...).
  [[noreturn]] void raise_undefined() const;

 private:
  Kind kind_ = Kind::kUndefined;
  int64_t i_ = 0;
  double f_ = 0;
  std::string s_;
  void* p_ = nullptr;
};

struct List {
  std::vector<Value> items;
  bool is_tuple = false;
};

// Insertion-ordered string-keyed dict (Python dicts keep insertion order). Namespaces are dicts whose
// attributes may be assigned with {% set ns.x = ... %}.
struct Dict {
  std::vector<std::pair<std::string, Value>> entries;
  std::unordered_map<std::string, size_t> index;
  bool is_namespace = false;

  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value v);
};

struct MacroDef;  // parser AST
struct Frame;

struct Callable {
  enum class Type { kBuiltin, kMethod, kMacro };
  Type type = Type::kBuiltin;
  std::string name;                 // builtin or method name
  Value self;                       // bound object of a method
  const MacroDef* macro = nullptr;  // kMacro
  std::shared_ptr<Frame> closure;   // kMacro: the frame the macro was defined in
  Value caller;                     // kMacro: the `caller` of a {% call %} block, else undefined
};

// A variable scope. Loops and macro calls open a new frame whose parent is the enclosing one.
struct Frame {
  std::shared_ptr<Frame> parent;
  std::unordered_map<std::string, Value> vars;

  const Value* lookup(const std::string& name) const;
};

// Owns every list, dict and callable of one render; also enforces the size budget.
class Arena {
 public:
  explicit Arena(size_t max_elements) : max_elements_(max_elements) {}
  List* new_list();
  Dict* new_dict();
  Callable* new_callable();
  // Counts n more container elements against the budget (raises when it is exceeded).
  void charge(size_t n);

 private:
  size_t max_elements_;
  size_t n_elements_ = 0;
  std::vector<std::unique_ptr<List>> lists_;
  std::vector<std::unique_ptr<Dict>> dicts_;
  std::vector<std::unique_ptr<Callable>> callables_;
};

// Python truthiness (undefined is false).
bool truthy(const Value& v);
// Python ==, with Jinja2's rule that two undefined values are equal.
bool equals(const Value& a, const Value& b);
// Python <, raising for unorderable types. Returns -1, 0, 1.
int compare(const Value& a, const Value& b);
// Python type name for messages ("str", "int", "dict", "list", "NoneType", "Undefined").
std::string type_name(const Value& v);
// str(v); undefined prints as "". `limit` bounds the result size (raises when exceeded).
std::string to_str(const Value& v, size_t limit);
// repr(v).
std::string to_repr(const Value& v, size_t limit);

struct JsonOptions {
  bool ensure_ascii = false;
  bool has_indent = false;
  std::string indent;  // per level
  std::string item_sep = ", ";
  std::string key_sep = ": ";
  bool sort_keys = false;
};
// Python json.dumps(v, ...). Raises for values JSON cannot hold (undefined, callables) and on overflow of `limit`.
std::string to_json(const Value& v, const JsonOptions& opts, size_t limit);

// JSON (insertion-ordered) to Value, allocating containers in `arena`.
Value from_json(const nlohmann::ordered_json& j, Arena& arena, int depth = 0);

// The items a for loop sees: list items, dict keys, string characters; undefined: none. Others raise.
std::vector<Value> iterate(const Value& v);
// len(v): characters, items or keys; raises for other types.
int64_t length(const Value& v);

}  // namespace rf::chat
