// Recursive-descent parser from lexer tokens to the syntax tree, following Jinja2's grammar and operator
// precedence. Throws RenderError (with a line) on malformed templates; nesting depth is bounded.
#pragma once

#include <vector>

#include "chat/ast.h"
#include "chat/lexer.h"

namespace rf::chat {

Body parse(const std::vector<Token>& tokens);

}  // namespace rf::chat
