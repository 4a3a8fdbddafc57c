// The fixed chat that chat_template_fuzz renders every template against, and the flags its first input byte
// carries (shared with the seed program).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>

#include "chat/chat_template.h"

namespace rf::fuzz {

inline constexpr uint8_t kChatGenerationPrompt = 1;  // add_generation_prompt
inline constexpr uint8_t kChatTools = 2;             // `tools` defined
inline constexpr uint8_t kChatSystem = 4;            // the conversation opens with a system message

// A conversation with every kind of turn (system, user, assistant with tool calls, tool result, unicode and
// empty contents) and the chat variables of Hugging Face templates.
inline chat::ChatRequest fuzz_chat(uint8_t flags) {
  chat::ChatRequest req;
  req.messages = nlohmann::ordered_json::parse(R"([
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello! \u00e9\u4e2d\ud83e\udd99"},
    {"role": "user", "content": "What's the weather in Paris?"},
    {"role": "assistant", "content": null, "tool_calls": [{"id": "call_123456789", "type": "function",
      "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]},
    {"role": "tool", "content": "{\"temp\": 21.5}", "tool_call_id": "call_123456789", "name": "get_weather"},
    {"role": "assistant", "content": ""},
    {"role": "user", "content": "Thanks\n\nbye <|im_end|> {{ x }}"}])");
  if (flags & kChatSystem) {
    const nlohmann::ordered_json system = {{"role", "system"}, {"content", "You are terse."}};
    req.messages.insert(req.messages.begin(), system);
  }
  req.add_generation_prompt = (flags & kChatGenerationPrompt) != 0;
  req.bos_token = "<s>";
  req.eos_token = "</s>";
  if (flags & kChatTools) {
    req.tools = nlohmann::ordered_json::parse(R"([{"type": "function", "function": {"name": "get_weather",
      "description": "Weather forecast", "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name"}, "days": {"type": "integer", "minimum": 1}},
      "required": ["city"]}}}])");
  }
  req.extra = {{"date_string", "15 Jan 2026"}, {"tools_in_user_message", false}, {"builtin_tools", {"code"}}};
  return req;
}

// Small limits: any template finishes (or fails) in milliseconds and a few MiB.
inline chat::RenderOptions fuzz_render_options() {
  chat::RenderOptions opts;
  std::tm now{};
  now.tm_year = 126;
  now.tm_mon = 0;
  now.tm_mday = 15;
  now.tm_hour = 12;
  now.tm_wday = 4;
  now.tm_yday = 14;
  opts.now = now;
  opts.max_output_bytes = size_t{32} << 10;
  opts.max_elements = size_t{16} << 10;
  opts.max_steps = 50'000;
  opts.max_call_depth = 16;
  return opts;
}

}  // namespace rf::fuzz
