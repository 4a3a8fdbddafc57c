// Tree-walking renderer: executes a parsed template against a global frame with Jinja2's scoping (for-loop
// iterations and macro calls open frames; if/set do not), loop controls, macros and call blocks.
// Bounded: step count, output size and macro recursion depth. Throws RenderError.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "chat/ast.h"
#include "chat/builtins.h"

namespace rf::chat {

struct Limits {
  size_t max_output_bytes = 0;
  uint64_t max_steps = 0;
  int max_call_depth = 0;
};

class Interpreter {
 public:
  Interpreter(Env& env, const Limits& limits) : env_(env), limits_(limits) {}

  // Renders `body` with `globals` as the outermost frame. On error the thrown RenderError carries the line.
  std::string run(const Body& body, const std::shared_ptr<Frame>& globals);

 private:
  using FramePtr = std::shared_ptr<Frame>;
  enum class Flow { kNormal, kBreak, kContinue };

  Flow exec_body(const Body& body, const FramePtr& frame, std::string& out);
  Flow exec(const Stmt& s, const FramePtr& frame, std::string& out);
  void exec_for(const Stmt& s, const FramePtr& frame, std::string& out);
  void assign(const Target& t, const Value& v, const FramePtr& frame);

  Value eval(const Expr& e, const FramePtr& frame);
  CallArgs eval_args(const Expr& e, size_t first, const FramePtr& frame);
  Value call(const Value& callee, const CallArgs& args, const Value& caller);
  Value call_macro(const Callable& fn, const CallArgs& args, const Value& caller);
  Value apply_filters(const std::vector<ExprPtr>& filters, Value v, const FramePtr& frame);

  void step(int line);
  void emit(std::string& out, const std::string& s) const;

  Env& env_;
  Limits limits_;
  uint64_t steps_ = 0;
  int call_depth_ = 0;
  int line_ = 0;
};

}  // namespace rf::chat
