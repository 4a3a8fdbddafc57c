#include "chat/interpreter.h"

#include <algorithm>

namespace rf::chat {

std::string Interpreter::run(const Body& body, const std::shared_ptr<Frame>& globals) {
  auto root = std::make_shared<Frame>();
  root->parent = globals;
  std::string out;
  try {
    exec_body(body, root, out);
  } catch (RenderError& e) {
    if (e.line == 0) e.line = line_;
    throw;
  }
  return out;
}

void Interpreter::step(int line) {
  line_ = line;
  if (++steps_ > limits_.max_steps) {
    fail("template exceeded the limit of " + std::to_string(limits_.max_steps) + " evaluation steps");
  }
}

void Interpreter::emit(std::string& out, const std::string& s) const {
  if (out.size() + s.size() > limits_.max_output_bytes) {
    fail("template output exceeds the limit of " + std::to_string(limits_.max_output_bytes) + " bytes");
  }
  out += s;
}

Interpreter::Flow Interpreter::exec_body(const Body& body, const FramePtr& frame, std::string& out) {
  for (const StmtPtr& s : body) {
    const Flow flow = exec(*s, frame, out);
    if (flow != Flow::kNormal) return flow;
  }
  return Flow::kNormal;
}

Interpreter::Flow Interpreter::exec(const Stmt& s, const FramePtr& frame, std::string& out) {
  step(s.line);
  switch (s.kind) {
    case StmtKind::kText:
      emit(out, s.text);
      break;
    case StmtKind::kPrint:
      emit(out, to_str(eval(*s.expr, frame), limits_.max_output_bytes));
      break;
    case StmtKind::kIf:
      for (const auto& [cond, body] : s.branches) {
        if (truthy(eval(*cond, frame))) return exec_body(body, frame, out);
      }
      return exec_body(s.else_body, frame, out);
    case StmtKind::kFor:
      exec_for(s, frame, out);
      break;
    case StmtKind::kSet:
      assign(s.target, eval(*s.expr, frame), frame);
      break;
    case StmtKind::kSetBlock: {
      std::string captured;
      exec_body(s.body, frame, captured);
      assign(s.target, apply_filters(s.filters, Value::string(std::move(captured)), frame), frame);
      break;
    }
    case StmtKind::kFilterBlock: {
      std::string captured;
      exec_body(s.body, frame, captured);
      emit(out, to_str(apply_filters(s.filters, Value::string(std::move(captured)), frame), limits_.max_output_bytes));
      break;
    }
    case StmtKind::kMacro: {
      Callable* c = env_.arena->new_callable();
      c->type = Callable::Type::kMacro;
      c->name = s.macro->name;
      c->macro = s.macro.get();
      c->closure = frame;
      frame->vars[s.macro->name] = Value::callable(c);
      break;
    }
    case StmtKind::kCallBlock: {
      Callable* caller = env_.arena->new_callable();
      caller->type = Callable::Type::kMacro;
      caller->name = "caller";
      caller->macro = s.macro.get();
      caller->closure = frame;
      const Value callee = eval(*s.expr->args[0], frame);
      const CallArgs args = eval_args(*s.expr, 1, frame);
      emit(out, to_str(call(callee, args, Value::callable(caller)), limits_.max_output_bytes));
      break;
    }
    case StmtKind::kWith: {
      auto inner = std::make_shared<Frame>();
      inner->parent = frame;
      for (const auto& [target, expr] : s.assignments) assign(target, eval(*expr, frame), inner);
      return exec_body(s.body, inner, out);
    }
    case StmtKind::kBreak:
      return Flow::kBreak;
    case StmtKind::kContinue:
      return Flow::kContinue;
  }
  return Flow::kNormal;
}

void Interpreter::exec_for(const Stmt& s, const FramePtr& frame, std::string& out) {
  std::vector<Value> items = iterate(eval(*s.expr, frame));
  if (s.cond) {
    std::vector<Value> kept;
    for (const Value& item : items) {
      auto probe = std::make_shared<Frame>();
      probe->parent = frame;
      assign(s.target, item, probe);
      if (truthy(eval(*s.cond, probe))) kept.push_back(item);
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    auto inner = std::make_shared<Frame>();
    inner->parent = frame;
    exec_body(s.else_body, inner, out);
    return;
  }
  Dict* loop = env_.arena->new_dict();
  env_.arena->charge(12);
  const auto n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < n; ++i) {
    step(s.line);
    auto inner = std::make_shared<Frame>();
    inner->parent = frame;
    assign(s.target, items[static_cast<size_t>(i)], inner);
    loop->set("index", Value::integer(i + 1));
    loop->set("index0", Value::integer(i));
    loop->set("revindex", Value::integer(n - i));
    loop->set("revindex0", Value::integer(n - i - 1));
    loop->set("first", Value::boolean(i == 0));
    loop->set("last", Value::boolean(i == n - 1));
    loop->set("length", Value::integer(n));
    loop->set("depth", Value::integer(1));
    loop->set("depth0", Value::integer(0));
    loop->set("previtem", i > 0 ? items[static_cast<size_t>(i - 1)] : Value::undefined("there is no previous item"));
    loop->set("nextitem", i + 1 < n ? items[static_cast<size_t>(i + 1)] : Value::undefined("there is no next item"));
    Callable* cycle = env_.arena->new_callable();  // loop.cycle(a, b, ...) picks by index0
    cycle->type = Callable::Type::kMethod;
    cycle->name = "cycle";
    cycle->self = Value::integer(i);
    loop->set("cycle", Value::callable(cycle));
    inner->vars["loop"] = Value::dict(loop);
    if (exec_body(s.body, inner, out) == Flow::kBreak) break;
  }
}

void Interpreter::assign(const Target& t, const Value& v, const FramePtr& frame) {
  switch (t.type) {
    case Target::Type::kName:
      frame->vars[t.names[0]] = v;
      return;
    case Target::Type::kAttr: {
      const Value* ns = frame->lookup(t.names[0]);
      if (ns == nullptr || !ns->is_dict() || !ns->as_dict()->is_namespace) {
        fail("cannot assign attribute on non-namespace object '" + t.names[0] + "'");
      }
      ns->as_dict()->set(t.attr, v);
      return;
    }
    case Target::Type::kTuple: {
      const std::vector<Value> items = iterate(v);
      if (items.size() != t.names.size()) {
        fail((items.size() > t.names.size() ? "too many" : "not enough") + std::string(" values to unpack (expected ") +
             std::to_string(t.names.size()) + ", got " + std::to_string(items.size()) + ")");
      }
      for (size_t i = 0; i < items.size(); ++i) frame->vars[t.names[i]] = items[i];
      return;
    }
  }
}

Value Interpreter::apply_filters(const std::vector<ExprPtr>& filters, Value v, const FramePtr& frame) {
  for (const ExprPtr& f : filters) v = apply_filter(env_, f->name, v, eval_args(*f, 1, frame));
  return v;
}

CallArgs Interpreter::eval_args(const Expr& e, size_t first, const FramePtr& frame) {
  CallArgs a;
  for (size_t i = first; i < e.args.size(); ++i) a.args.push_back(eval(*e.args[i], frame));
  for (const auto& [k, x] : e.kwargs) a.kwargs.emplace_back(k, eval(*x, frame));
  return a;
}

Value Interpreter::call(const Value& callee, const CallArgs& args, const Value& caller) {
  if (callee.is_undefined()) callee.raise_undefined();
  if (callee.kind() != Kind::kCallable) fail("'" + type_name(callee) + "' object is not callable");
  const Callable& fn = *callee.as_callable();
  switch (fn.type) {
    case Callable::Type::kMacro:
      return call_macro(fn, args, caller);
    case Callable::Type::kMethod:
      return call_method(env_, fn, args);
    case Callable::Type::kBuiltin:
      return call_global(env_, fn.name, args);
  }
  return Value::none();
}

Value Interpreter::call_macro(const Callable& fn, const CallArgs& args, const Value& caller) {
  const MacroDef& m = *fn.macro;
  if (call_depth_ >= limits_.max_call_depth) {
    fail("macro calls nested deeper than " + std::to_string(limits_.max_call_depth) + " levels");
  }
  auto frame = std::make_shared<Frame>();
  frame->parent = fn.closure;
  if (args.args.size() > m.params.size() && !m.uses_varargs) {
    fail("macro '" + m.name + "' takes not more than " + std::to_string(m.params.size()) + " argument(s)");
  }
  Dict* kwargs = env_.arena->new_dict();
  for (const auto& [k, v] : args.kwargs) {
    const auto it = std::find(m.params.begin(), m.params.end(), k);
    if (it == m.params.end()) {
      if (!m.uses_kwargs) fail("macro '" + m.name + "' takes no keyword argument '" + k + "'");
      kwargs->set(k, v);
    } else if (static_cast<size_t>(it - m.params.begin()) < args.args.size()) {
      fail("macro '" + m.name + "' got multiple values for argument '" + k + "'");
    }
  }
  for (size_t i = 0; i < m.params.size(); ++i) {
    const std::string& p = m.params[i];
    const Value* given = args.get(i, p.c_str());
    if (given != nullptr) {
      frame->vars[p] = *given;
    } else if (m.defaults[i]) {
      frame->vars[p] = eval(*m.defaults[i], frame);
    } else {
      frame->vars[p] = Value::undefined("parameter '" + p + "' was not provided");
    }
  }
  std::vector<Value> varargs;
  for (size_t i = m.params.size(); i < args.args.size(); ++i) varargs.push_back(args.args[i]);
  frame->vars["varargs"] = make_list(env_, std::move(varargs), true);
  frame->vars["kwargs"] = Value::dict(kwargs);
  if (!caller.is_undefined()) frame->vars["caller"] = caller;
  ++call_depth_;
  std::string out;
  exec_body(m.body, frame, out);
  --call_depth_;
  return Value::string(std::move(out));
}

Value Interpreter::eval(const Expr& e, const FramePtr& frame) {
  step(e.line);
  switch (e.kind) {
    case ExprKind::kLiteral:
      return e.literal;
    case ExprKind::kName: {
      const Value* v = frame->lookup(e.name);
      return v != nullptr ? *v : Value::undefined("'" + e.name + "' is undefined");
    }
    case ExprKind::kList:
    case ExprKind::kTuple: {
      std::vector<Value> items;
      for (const ExprPtr& x : e.args) items.push_back(eval(*x, frame));
      return make_list(env_, std::move(items), e.kind == ExprKind::kTuple);
    }
    case ExprKind::kDict: {
      Dict* d = env_.arena->new_dict();
      env_.arena->charge(e.args.size() / 2);
      for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
        const Value key = eval(*e.args[i], frame);
        if (!key.is_string()) fail("dict keys must be strings, got " + type_name(key));
        d->set(key.as_string(), eval(*e.args[i + 1], frame));
      }
      return Value::dict(d);
    }
    case ExprKind::kGetAttr:
      return get_attr(env_, eval(*e.args[0], frame), e.name);
    case ExprKind::kGetItem: {
      const Value obj = eval(*e.args[0], frame);
      return get_item(env_, obj, eval(*e.args[1], frame));
    }
    case ExprKind::kSlice: {
      const Value obj = eval(*e.args[0], frame);
      Value parts[3];
      for (int i = 0; i < 3; ++i) {
        if (e.args[1 + i]) parts[i] = eval(*e.args[1 + i], frame);
      }
      return get_slice(env_, obj, e.args[1] ? &parts[0] : nullptr, e.args[2] ? &parts[1] : nullptr,
                       e.args[3] ? &parts[2] : nullptr);
    }
    case ExprKind::kCall: {
      const Value callee = eval(*e.args[0], frame);
      return call(callee, eval_args(e, 1, frame), Value());
    }
    case ExprKind::kFilter: {
      const Value input = eval(*e.args[0], frame);
      return apply_filter(env_, e.name, input, eval_args(e, 1, frame));
    }
    case ExprKind::kTest: {
      const Value input = eval(*e.args[0], frame);
      return Value::boolean(apply_test(env_, e.name, input, eval_args(e, 1, frame)) != e.negated);
    }
    case ExprKind::kNeg:
    case ExprKind::kPos: {
      const Value x = eval(*e.args[0], frame);
      if (x.is_undefined()) x.raise_undefined();
      if (!x.is_number())
        fail("bad operand type for unary " + std::string(e.kind == ExprKind::kNeg ? "-" : "+") + ": '" + type_name(x) +
             "'");
      if (e.kind == ExprKind::kPos) return x.is_integral() ? Value::integer(x.as_int()) : x;
      if (x.kind() == Kind::kFloat) return Value::number(-x.as_double());
      return binary_op(env_, "-", Value::integer(0), x);
    }
    case ExprKind::kNot:
      return Value::boolean(!truthy(eval(*e.args[0], frame)));
    case ExprKind::kBinary: {
      const Value a = eval(*e.args[0], frame);
      return binary_op(env_, e.name, a, eval(*e.args[1], frame));
    }
    case ExprKind::kAnd: {
      Value a = eval(*e.args[0], frame);
      return truthy(a) ? eval(*e.args[1], frame) : a;
    }
    case ExprKind::kOr: {
      Value a = eval(*e.args[0], frame);
      return truthy(a) ? a : eval(*e.args[1], frame);
    }
    case ExprKind::kCompare: {
      Value left = eval(*e.args[0], frame);
      for (size_t i = 0; i < e.ops.size(); ++i) {
        Value right = eval(*e.args[i + 1], frame);
        const std::string& op = e.ops[i];
        bool ok = false;
        if (op == "==")
          ok = equals(left, right);
        else if (op == "!=")
          ok = !equals(left, right);
        else if (op == "<")
          ok = compare(left, right) < 0;
        else if (op == "<=")
          ok = compare(left, right) <= 0;
        else if (op == ">")
          ok = compare(left, right) > 0;
        else if (op == ">=")
          ok = compare(left, right) >= 0;
        else if (op == "in")
          ok = contains(left, right);
        else
          ok = !contains(left, right);
        if (!ok) return Value::boolean(false);
        left = std::move(right);
      }
      return Value::boolean(true);
    }
    case ExprKind::kCond: {
      if (truthy(eval(*e.args[0], frame))) return eval(*e.args[1], frame);
      if (e.args[2]) return eval(*e.args[2], frame);
      return Value::undefined("the inline if-expression on line " + std::to_string(e.line) +
                              " evaluated to false and no else section was defined");
    }
  }
  return Value();
}

}  // namespace rf::chat
