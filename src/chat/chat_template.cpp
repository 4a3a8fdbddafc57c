#include "chat/chat_template.h"

#include <new>

#include "chat/ast.h"
#include "chat/builtins.h"
#include "chat/interpreter.h"
#include "chat/lexer.h"
#include "chat/parser.h"

namespace rf::chat {

namespace {

Status template_error(const RenderError& e) {
  return Status::error("chat template: line " + std::to_string(e.line) + ": " + e.message);
}

}  // namespace

Expected<ChatTemplate> ChatTemplate::parse(std::string_view source) {
  try {
    ChatTemplate t;
    t.body_ = std::make_shared<const Body>(rf::chat::parse(lex(source, LexOptions{})));
    return t;
  } catch (const RenderError& e) {
    return template_error(e);
  } catch (const std::bad_alloc&) {
    return Status::error("chat template: out of memory while parsing");
  }
}

Expected<std::string> ChatTemplate::render(const nlohmann::ordered_json& context, const RenderOptions& opts) const {
  if (!context.is_object()) {
    return Status::error(std::string("chat template: the context must be a JSON object, got ") + context.type_name());
  }
  try {
    Arena arena(opts.max_elements);
    Env env;
    env.arena = &arena;
    env.max_string = opts.max_output_bytes;
    env.now = opts.now;
    auto globals = std::make_shared<Frame>();
    for (const std::string& name : global_names()) {
      Callable* c = arena.new_callable();
      c->type = Callable::Type::kBuiltin;
      c->name = name;
      globals->vars[name] = Value::callable(c);
    }
    for (const auto& [key, value] : context.items()) globals->vars[key] = from_json(value, arena);
    Limits limits;
    limits.max_output_bytes = opts.max_output_bytes;
    limits.max_steps = opts.max_steps;
    limits.max_call_depth = opts.max_call_depth;
    Interpreter interp(env, limits);
    return interp.run(*body_, globals);
  } catch (const RenderError& e) {
    return template_error(e);
  } catch (const std::bad_alloc&) {
    return Status::error("chat template: out of memory while rendering");
  } catch (const std::length_error&) {
    return Status::error("chat template: a value grew too large while rendering");
  }
}

nlohmann::ordered_json chat_context(const ChatRequest& request) {
  nlohmann::ordered_json ctx = request.extra.is_object() ? request.extra : nlohmann::ordered_json::object();
  ctx["messages"] = request.messages;
  ctx["add_generation_prompt"] = request.add_generation_prompt;
  ctx["bos_token"] = request.bos_token;
  ctx["eos_token"] = request.eos_token;
  if (request.tools) ctx["tools"] = *request.tools;
  return ctx;
}

Expected<std::string> ChatTemplate::render_chat(const ChatRequest& request, const RenderOptions& opts) const {
  return render(chat_context(request), opts);
}

Expected<std::string> render(std::string_view template_source, const nlohmann::ordered_json& context,
                             const RenderOptions& opts) {
  auto t = ChatTemplate::parse(template_source);
  if (!t) return t.status();
  return t->render(context, opts);
}

Expected<std::string> render_chat(std::string_view template_source, const ChatRequest& request,
                                  const RenderOptions& opts) {
  auto t = ChatTemplate::parse(template_source);
  if (!t) return t.status();
  return t->render_chat(request, opts);
}

}  // namespace rf::chat
