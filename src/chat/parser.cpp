#include "chat/parser.h"

#include <algorithm>
#include <initializer_list>
#include <string>
#include <utility>

#include "chat/builtins.h"

namespace rf::chat {

namespace {

constexpr int kMaxNesting = 64;  // blocks and expressions; bounds recursion on hostile input

class Parser {
 public:
  explicit Parser(const std::vector<Token>& tokens) : toks_(tokens) {}

  Body parse_template() {
    std::string end;
    Body body = parse_body({}, &end);
    return body;
  }

 private:
  // ---- token helpers ----
  const Token& cur() const { return toks_[pos_]; }
  const Token& peek(size_t n = 1) const { return toks_[std::min(pos_ + n, toks_.size() - 1)]; }
  void next() {
    if (pos_ + 1 < toks_.size()) ++pos_;
  }
  bool is_op(const char* op) const { return cur().type == TokenType::kOp && cur().text == op; }
  bool is_name(const char* name) const { return cur().type == TokenType::kName && cur().text == name; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(const char* name) {
    if (!is_name(name)) return false;
    next();
    return true;
  }
  [[noreturn]] void error(const std::string& msg) const { throw RenderError{msg, cur().line}; }
  std::string describe(const Token& t) const {
    switch (t.type) {
      case TokenType::kEof:
        return "end of template";
      case TokenType::kBlockEnd:
        return "end of statement block";
      case TokenType::kVarEnd:
        return "end of print statement";
      case TokenType::kString:
        return "string";
      case TokenType::kInt:
      case TokenType::kFloat:
        return "number";
      default:
        return "'" + t.text + "'";
    }
  }
  void expect_op(const char* op) {
    if (!skip_op(op)) error(std::string("expected '") + op + "', got " + describe(cur()));
  }
  std::string expect_name() {
    if (cur().type != TokenType::kName) error("expected a name, got " + describe(cur()));
    std::string n = cur().text;
    next();
    return n;
  }
  void expect_block_end() {
    if (cur().type != TokenType::kBlockEnd) error("expected end of statement block, got " + describe(cur()));
    next();
  }

  struct DepthGuard {
    explicit DepthGuard(Parser* p) : p_(p) {
      if (++p_->depth_ > kMaxNesting) p_->error("template nesting deeper than 64 levels");
    }
    ~DepthGuard() { --p_->depth_; }
    DepthGuard(const DepthGuard&) = delete;
    DepthGuard& operator=(const DepthGuard&) = delete;
    Parser* p_;
  };

  ExprPtr make(ExprKind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  // ---- statements ----

  // Parses until one of `ends` opens a block tag; leaves the stream after that tag name (*end = the name).
  // With no ends, parses to the end of the template.
  // Unknown filters/tests are errors at parse time, except inside {% if %} conditions and bodies, where
  // Jinja2 defers them to run time (its "soft" frames); bodies of other blocks are not soft.
  Body parse_body(std::initializer_list<const char*> ends, std::string* end, bool soft = false) {
    DepthGuard guard(this);
    const bool saved_soft = soft_;
    soft_ = soft;
    Body body = parse_body_items(ends, end);
    soft_ = saved_soft;
    return body;
  }

  Body parse_body_items(std::initializer_list<const char*> ends, std::string* end) {
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.type == TokenType::kEof) {
        if (ends.size() == 0) return body;
        std::string names;
        for (const char* e : ends) names += std::string(names.empty() ? "'" : ", '") + e + "'";
        error("unexpected end of template, expected " + names);
      }
      if (t.type == TokenType::kData) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kText;
        s->line = t.line;
        s->text = t.text;
        body.push_back(std::move(s));
        next();
      } else if (t.type == TokenType::kVarBegin) {
        next();
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kPrint;
        s->line = t.line;
        s->expr = parse_tuple(true);
        if (cur().type != TokenType::kVarEnd) error("expected end of print statement, got " + describe(cur()));
        next();
        body.push_back(std::move(s));
      } else if (t.type == TokenType::kBlockBegin) {
        next();
        if (cur().type != TokenType::kName) error("expected a statement name, got " + describe(cur()));
        const std::string name = cur().text;
        for (const char* e : ends) {
          if (name == e) {
            next();
            *end = name;
            return body;
          }
        }
        body.push_back(parse_statement());
      } else {
        error("unexpected " + describe(t));
      }
    }
  }

  StmtPtr parse_statement() {
    const int line = cur().line;
    const std::string name = expect_name();
    auto s = std::make_unique<Stmt>();
    s->line = line;
    if (name == "if") {
      parse_if(*s);
    } else if (name == "for") {
      parse_for(*s);
    } else if (name == "set") {
      parse_set(*s);
    } else if (name == "macro") {
      parse_macro(*s);
    } else if (name == "call") {
      parse_call_block(*s);
    } else if (name == "filter") {
      s->kind = StmtKind::kFilterBlock;
      parse_filter_chain(s->filters);
      expect_block_end();
      std::string end;
      s->body = parse_body({"endfilter"}, &end);
      expect_block_end();
    } else if (name == "with") {
      parse_with(*s);
    } else if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) error("'" + name + "' outside of a for loop");
      s->kind = name == "break" ? StmtKind::kBreak : StmtKind::kContinue;
      expect_block_end();
    } else {
      error("encountered unknown tag '" + name + "'");
    }
    return s;
  }

  void parse_if(Stmt& s) {
    s.kind = StmtKind::kIf;
    while (true) {
      const bool saved_soft = soft_;
      soft_ = true;
      ExprPtr cond = parse_tuple(true);
      soft_ = saved_soft;
      expect_block_end();
      std::string end;
      Body body = parse_body({"elif", "else", "endif"}, &end, true);
      s.branches.emplace_back(std::move(cond), std::move(body));
      if (end == "elif") continue;
      if (end == "else") {
        expect_block_end();
        s.else_body = parse_body({"endif"}, &end, true);
      }
      expect_block_end();
      return;
    }
  }

  Target parse_assign_target(bool allow_attr) {
    Target t;
    const bool paren = skip_op("(");
    t.names.push_back(expect_name());
    if (allow_attr && !paren && is_op(".")) {
      next();
      t.type = Target::Type::kAttr;
      t.attr = expect_name();
      return t;
    }
    while (skip_op(",")) {
      if (cur().type != TokenType::kName) break;
      t.names.push_back(expect_name());
      t.type = Target::Type::kTuple;
    }
    if (paren) {
      expect_op(")");
      if (t.names.size() == 1) t.type = Target::Type::kName;
    }
    return t;
  }

  void parse_for(Stmt& s) {
    s.kind = StmtKind::kFor;
    s.target = parse_assign_target(false);
    if (!skip_name("in")) error("expected 'in' in for loop, got " + describe(cur()));
    s.expr = parse_tuple(false);
    if (skip_name("if")) s.cond = parse_expression(true);
    if (is_name("recursive")) error("recursive for loops are not supported");
    expect_block_end();
    ++loop_depth_;
    std::string end;
    s.body = parse_body({"endfor", "else"}, &end);
    --loop_depth_;
    if (end == "else") {
      expect_block_end();
      const int saved = loop_depth_;
      loop_depth_ = 0;  // break/continue in the else branch belong to no loop of this for
      s.else_body = parse_body({"endfor"}, &end);
      loop_depth_ = saved;
    }
    expect_block_end();
  }

  void parse_set(Stmt& s) {
    s.target = parse_assign_target(true);
    if (skip_op("=")) {
      s.kind = StmtKind::kSet;
      s.expr = parse_tuple(true);
      expect_block_end();
      return;
    }
    s.kind = StmtKind::kSetBlock;
    if (is_op("|")) {
      next();
      parse_filter_chain(s.filters);
    }
    expect_block_end();
    std::string end;
    s.body = parse_body({"endset"}, &end);
    expect_block_end();
  }

  // `name(args) | name2 ...` as in {% filter %} and {% set x | f %}: filters with no input expression.
  void parse_filter_chain(std::vector<ExprPtr>& filters) {
    while (true) {
      filters.push_back(parse_filter(nullptr));
      if (!skip_op("|")) return;
    }
  }

  std::shared_ptr<MacroDef> parse_signature(std::string name) {
    auto def = std::make_shared<MacroDef>();
    def->name = std::move(name);
    expect_op("(");
    while (!is_op(")")) {
      if (!def->params.empty()) expect_op(",");
      if (is_op(")")) break;
      const std::string param = expect_name();
      if (std::find(def->params.begin(), def->params.end(), param) != def->params.end()) {
        error("duplicate argument '" + param + "' in macro definition");
      }
      def->params.push_back(param);
      def->defaults.push_back(skip_op("=") ? parse_expression(true) : nullptr);
    }
    next();
    return def;
  }

  void parse_macro_body(MacroDef& def, const char* end_name) {
    const int saved = loop_depth_;
    loop_depth_ = 0;
    const size_t start = pos_;
    std::string end;
    def.body = parse_body({end_name}, &end);
    for (size_t i = start; i < pos_; ++i) {
      if (toks_[i].type != TokenType::kName) continue;
      def.uses_varargs = def.uses_varargs || toks_[i].text == "varargs";
      def.uses_kwargs = def.uses_kwargs || toks_[i].text == "kwargs";
    }
    loop_depth_ = saved;
    if (cur().type == TokenType::kName) next();  // {% endmacro name %} is tolerated
    expect_block_end();
  }

  void parse_macro(Stmt& s) {
    s.kind = StmtKind::kMacro;
    s.macro = parse_signature(expect_name());
    expect_block_end();
    parse_macro_body(*s.macro, "endmacro");
  }

  void parse_call_block(Stmt& s) {
    s.kind = StmtKind::kCallBlock;
    s.macro = is_op("(") ? parse_signature("caller") : std::make_shared<MacroDef>();
    s.macro->name = "caller";
    s.expr = parse_expression(true);
    if (s.expr->kind != ExprKind::kCall) error("expected a call expression in {% call %}");
    expect_block_end();
    parse_macro_body(*s.macro, "endcall");
  }

  void parse_with(Stmt& s) {
    s.kind = StmtKind::kWith;
    while (cur().type != TokenType::kBlockEnd) {
      if (!s.assignments.empty()) expect_op(",");
      Target t = parse_assign_target(false);
      expect_op("=");
      s.assignments.emplace_back(std::move(t), parse_expression(true));
    }
    expect_block_end();
    std::string end;
    s.body = parse_body({"endwith"}, &end);
    expect_block_end();
  }

  // ---- expressions (Jinja2 precedence) ----

  // Expressions separated by commas form a tuple (`{{ a, b }}`, `{% set x = 1, 2 %}`).
  ExprPtr parse_tuple(bool with_condexpr) {
    const int line = cur().line;
    ExprPtr first = parse_expression(with_condexpr);
    if (!is_op(",")) return first;
    auto t = make(ExprKind::kTuple, line);
    t->args.push_back(std::move(first));
    while (skip_op(",")) {
      if (cur().type == TokenType::kBlockEnd || cur().type == TokenType::kVarEnd || is_op(")") || is_name("if")) break;
      t->args.push_back(parse_expression(with_condexpr));
    }
    return t;
  }

  ExprPtr parse_expression(bool with_condexpr) { return with_condexpr ? parse_condexpr() : parse_or(); }

  ExprPtr parse_condexpr() {
    DepthGuard guard(this);
    ExprPtr expr = parse_or();
    while (is_name("if")) {
      const int line = cur().line;
      next();
      auto c = make(ExprKind::kCond, line);
      c->args.push_back(parse_or());
      c->args.push_back(std::move(expr));
      c->args.push_back(skip_name("else") ? parse_condexpr() : nullptr);
      // args order: condition, then, else
      expr = std::move(c);
    }
    return expr;
  }

  ExprPtr binary(ExprKind kind, std::string op, ExprPtr a, ExprPtr b, int line) {
    auto e = make(kind, line);
    e->name = std::move(op);
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      const int line = cur().line;
      next();
      left = binary(ExprKind::kOr, "or", std::move(left), parse_and(), line);
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      const int line = cur().line;
      next();
      left = binary(ExprKind::kAnd, "and", std::move(left), parse_not(), line);
    }
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      DepthGuard guard(this);
      auto e = make(ExprKind::kNot, cur().line);
      next();
      e->args.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const int line = cur().line;
    ExprPtr first = parse_math1();
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (cur().type == TokenType::kOp &&
          (is_op("==") || is_op("!=") || is_op("<") || is_op("<=") || is_op(">") || is_op(">="))) {
        op = cur().text;
        next();
      } else if (is_name("in")) {
        op = "in";
        next();
      } else if (is_name("not") && peek().type == TokenType::kName && peek().text == "in") {
        op = "notin";
        next();
        next();
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(ExprKind::kCompare, line);
        cmp->args.push_back(std::move(first));
      }
      cmp->ops.push_back(op);
      cmp->args.push_back(parse_math1());
    }
    return cmp ? std::move(cmp) : std::move(first);
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      const std::string op = cur().text;
      const int line = cur().line;
      next();
      left = binary(ExprKind::kBinary, op, std::move(left), parse_concat(), line);
    }
    return left;
  }

  ExprPtr parse_concat() {
    ExprPtr left = parse_math2();
    while (is_op("~")) {
      const int line = cur().line;
      next();
      left = binary(ExprKind::kBinary, "~", std::move(left), parse_math2(), line);
    }
    return left;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const std::string op = cur().text;
      const int line = cur().line;
      next();
      left = binary(ExprKind::kBinary, op, std::move(left), parse_pow(), line);
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      const int line = cur().line;
      next();
      left = binary(ExprKind::kBinary, "**", std::move(left), parse_unary(true), line);
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(this);
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      node = make(is_op("-") ? ExprKind::kNeg : ExprKind::kPos, cur().line);
      next();
      node->args.push_back(parse_unary(false));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    DepthGuard guard(this);
    const Token& t = cur();
    const int line = t.line;
    if (t.type == TokenType::kName) {
      auto e = make(ExprKind::kLiteral, line);
      if (t.text == "true" || t.text == "True") {
        e->literal = Value::boolean(true);
      } else if (t.text == "false" || t.text == "False") {
        e->literal = Value::boolean(false);
      } else if (t.text == "none" || t.text == "None") {
        e->literal = Value::none();
      } else {
        e->kind = ExprKind::kName;
        e->name = t.text;
      }
      next();
      return e;
    }
    if (t.type == TokenType::kString) {
      std::string s;
      while (cur().type == TokenType::kString) {
        s += cur().text;
        next();
      }
      auto e = make(ExprKind::kLiteral, line);
      e->literal = Value::string(std::move(s));
      return e;
    }
    if (t.type == TokenType::kInt || t.type == TokenType::kFloat) {
      auto e = make(ExprKind::kLiteral, line);
      e->literal = t.type == TokenType::kInt ? Value::integer(t.int_value) : Value::number(t.float_value);
      next();
      return e;
    }
    if (skip_op("(")) {
      if (skip_op(")")) return make(ExprKind::kTuple, line);
      ExprPtr inner = parse_expression(true);
      if (is_op(",")) {
        auto tup = make(ExprKind::kTuple, line);
        tup->args.push_back(std::move(inner));
        while (skip_op(",")) {
          if (is_op(")")) break;
          tup->args.push_back(parse_expression(true));
        }
        inner = std::move(tup);
      }
      expect_op(")");
      return inner;
    }
    if (skip_op("[")) {
      auto e = make(ExprKind::kList, line);
      while (!is_op("]")) {
        if (!e->args.empty()) expect_op(",");
        if (is_op("]")) break;
        e->args.push_back(parse_expression(true));
      }
      next();
      return e;
    }
    if (skip_op("{")) {
      auto e = make(ExprKind::kDict, line);
      while (!is_op("}")) {
        if (!e->args.empty()) expect_op(",");
        if (is_op("}")) break;
        e->args.push_back(parse_expression(true));
        expect_op(":");
        e->args.push_back(parse_expression(true));
      }
      next();
      return e;
    }
    error("unexpected " + describe(t));
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      const int line = cur().line;
      if (is_op(".")) {
        next();
        if (cur().type == TokenType::kName) {
          auto e = make(ExprKind::kGetAttr, line);
          e->name = cur().text;
          e->args.push_back(std::move(node));
          node = std::move(e);
          next();
        } else if (cur().type == TokenType::kInt) {
          auto e = make(ExprKind::kGetItem, line);
          e->args.push_back(std::move(node));
          auto key = make(ExprKind::kLiteral, line);
          key->literal = Value::integer(cur().int_value);
          e->args.push_back(std::move(key));
          node = std::move(e);
          next();
        } else {
          error("expected an attribute name after '.', got " + describe(cur()));
        }
      } else if (is_op("[")) {
        next();
        node = parse_subscript(std::move(node), line);
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr obj, int line) {
    ExprPtr parts[3];
    int n_colons = 0;
    if (is_op("]") || (!is_op(":") && peek().type == TokenType::kOp && peek().text == ",")) {
      // x[] and x[a, b]: the key is a tuple, as in Jinja2 (it never matches a JSON key).
      auto key = make(ExprKind::kTuple, line);
      while (!is_op("]")) {
        if (!key->args.empty()) expect_op(",");
        if (is_op("]")) break;
        key->args.push_back(parse_expression(true));
      }
      next();
      auto e = make(ExprKind::kGetItem, line);
      e->args.push_back(std::move(obj));
      e->args.push_back(std::move(key));
      return e;
    }
    if (!is_op(":")) parts[0] = parse_expression(true);
    while (n_colons < 2 && skip_op(":")) {
      ++n_colons;
      if (!is_op(":") && !is_op("]")) parts[n_colons] = parse_expression(true);
    }
    expect_op("]");
    if (n_colons == 0) {
      auto e = make(ExprKind::kGetItem, line);
      e->args.push_back(std::move(obj));
      e->args.push_back(std::move(parts[0]));
      return e;
    }
    auto e = make(ExprKind::kSlice, line);
    e->args.push_back(std::move(obj));
    for (auto& p : parts) e->args.push_back(std::move(p));
    return e;
  }

  // Parses "(args)" into e->args (after the existing ones) and e->kwargs.
  void parse_args(Expr& e) {
    expect_op("(");
    bool first = true;
    while (!is_op(")")) {
      if (!first) expect_op(",");
      first = false;
      if (is_op(")")) break;
      if (cur().type == TokenType::kName && peek().type == TokenType::kOp && peek().text == "=") {
        std::string key = cur().text;
        next();
        next();
        e.kwargs.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!e.kwargs.empty()) error("positional argument after keyword argument");
        e.args.push_back(parse_expression(true));
      }
    }
    next();
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto e = make(ExprKind::kCall, cur().line);
    e->args.push_back(std::move(callee));
    parse_args(*e);
    return e;
  }

  std::string parse_dotted_name() {
    std::string name = expect_name();
    while (is_op(".") && peek().type == TokenType::kName) {
      next();
      name += "." + expect_name();
    }
    return name;
  }

  ExprPtr parse_filter(ExprPtr input) {
    auto e = make(ExprKind::kFilter, cur().line);
    e->name = parse_dotted_name();
    if (!soft_ && !is_known_filter(e->name)) error("no filter named '" + e->name + "'");
    e->args.push_back(std::move(input));
    if (is_op("(")) parse_args(*e);
    return e;
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        next();
        node = parse_filter(std::move(node));
      } else if (is_name("is")) {
        next();
        auto e = make(ExprKind::kTest, cur().line);
        e->negated = skip_name("not");
        e->name = parse_dotted_name();
        if (!soft_ && !is_known_test(e->name)) error("no test named '" + e->name + "'");
        e->args.push_back(std::move(node));
        const TokenType t = cur().type;
        if (is_op("(")) {
          parse_args(*e);
        } else if ((t == TokenType::kName || t == TokenType::kString || t == TokenType::kInt ||
                    t == TokenType::kFloat || is_op("[") || is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and")) {
          e->args.push_back(parse_postfix(parse_primary()));
        }
        node = std::move(e);
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  const std::vector<Token>& toks_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
  bool soft_ = false;
};

}  // namespace

Body parse(const std::vector<Token>& tokens) { return Parser(tokens).parse_template(); }

}  // namespace rf::chat
