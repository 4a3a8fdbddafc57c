// Syntax tree of a parsed template: expressions and statements.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/value.h"

namespace rf::chat {

enum class ExprKind {
  kLiteral,  // literal: a scalar or string constant
  kName,     // name
  kList,     // args: items
  kTuple,    // args: items
  kDict,     // args: key0, value0, key1, value1, ...
  kGetAttr,  // args: [object]; name: attribute
  kGetItem,  // args: [object, key]
  kSlice,    // args: [object, start, stop, step] (null when omitted)
  kCall,     // args: [callee, positional...]; kwargs
  kFilter,   // args: [input (null inside {% filter %} / {% set %} blocks), positional...]; kwargs; name
  kTest,     // args: [input, positional...]; name; negated
  kNeg,      // args: [x]
  kPos,      // args: [x]
  kNot,      // args: [x]
  kBinary,   // args: [a, b]; name: + - * / // % ** ~
  kAnd,      // args: [a, b]
  kOr,       // args: [a, b]
  kCompare,  // args: [first, operands...]; ops: == != < <= > >= in notin
  kCond,     // args: [condition, then, else (null: undefined)]
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  ExprKind kind = ExprKind::kLiteral;
  int line = 0;
  Value literal;
  std::string name;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
  bool negated = false;
};

// Left side of an assignment or a loop variable list.
struct Target {
  enum class Type { kName, kTuple, kAttr };
  Type type = Type::kName;
  std::vector<std::string> names;  // kName: one; kTuple: several; kAttr: the namespace variable
  std::string attr;                // kAttr
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct MacroDef {
  std::string name;
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;  // one per param, null when it has none
  Body body;
  bool uses_varargs = false;  // the body names `varargs`: extra positional arguments are accepted
  bool uses_kwargs = false;   // the body names `kwargs`: unknown keyword arguments are accepted
};

enum class StmtKind {
  kText,
  kPrint,
  kIf,
  kFor,
  kSet,
  kSetBlock,
  kMacro,
  kCallBlock,
  kFilterBlock,
  kWith,
  kBreak,
  kContinue
};

struct Stmt {
  StmtKind kind = StmtKind::kText;
  int line = 0;
  std::string text;                                     // kText
  ExprPtr expr;                                         // kPrint, kSet value, kFor iterable, kCallBlock call
  ExprPtr cond;                                         // kFor filter (`for x in y if cond`)
  Target target;                                        // kSet, kSetBlock, kFor
  std::vector<std::pair<ExprPtr, Body>> branches;       // kIf: (condition, body) for if and each elif
  Body body;                                            // kFor, kSetBlock, kFilterBlock, kWith
  Body else_body;                                       // kIf, kFor
  std::vector<ExprPtr> filters;                         // kSetBlock, kFilterBlock: filters applied in order
  std::shared_ptr<MacroDef> macro;                      // kMacro; kCallBlock: the `caller` definition
  std::vector<std::pair<Target, ExprPtr>> assignments;  // kWith
};

}  // namespace rf::chat
