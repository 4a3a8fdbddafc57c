// Jinja2 built-ins as Hugging Face chat templates use them: filters, tests, attribute and item access,
// methods of str/dict/list, binary operators and the global functions. Errors are thrown as RenderError.
#pragma once

#include <ctime>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "chat/value.h"

namespace rf::chat {

// What built-ins need from the render in progress.
struct Env {
  Arena* arena = nullptr;
  size_t max_string = 0;       // bound on any string produced
  std::optional<std::tm> now;  // time for strftime_now; local time when unset
};

struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;

  // Positional argument `pos` or keyword `name`; null when neither was given.
  const Value* get(size_t pos, const char* name) const;
};

bool is_known_filter(const std::string& name);
bool is_known_test(const std::string& name);
Value apply_filter(Env& env, const std::string& name, const Value& input, const CallArgs& args);
bool apply_test(Env& env, const std::string& name, const Value& input, const CallArgs& args);

// obj.name and obj[key] with Jinja2's lookup rules (methods first for `.`, items first for `[]`); a miss gives
// an undefined value whose message names the object and the attribute.
Value get_attr(Env& env, const Value& obj, const std::string& name);
Value get_item(Env& env, const Value& obj, const Value& key);
// obj[start:stop:step] (null parts are omitted).
Value get_slice(Env& env, const Value& obj, const Value* start, const Value* stop, const Value* step);

// Calls a bound method (Callable::Type::kMethod) or a global built-in (kBuiltin).
Value call_method(Env& env, const Callable& fn, const CallArgs& args);
Value call_global(Env& env, const std::string& name, const CallArgs& args);
// Names of the global functions (range, namespace, dict, raise_exception, strftime_now).
const std::vector<std::string>& global_names();

// a op b for + - * / // % ** ~.
Value binary_op(Env& env, const std::string& op, const Value& a, const Value& b);
// needle in haystack.
bool contains(const Value& needle, const Value& haystack);
// Python's printf-style `fmt % args` (args: a value or a tuple).
std::string percent_format(Env& env, const std::string& fmt, const Value& args);

// A new list value in env's arena.
Value make_list(Env& env, std::vector<Value> items, bool is_tuple = false);

}  // namespace rf::chat
