// Regressions found while fuzzing the chat-template engine (fuzz/chat_template_fuzz.cpp) with a clang build.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "chat/chat_template.h"

namespace rf::chat {
namespace {

std::string render_ok(const std::string& source) {
  const auto out = render(source, nlohmann::ordered_json::object());
  EXPECT_TRUE(out.ok()) << source << ": " << out.error_message();
  return out.ok() ? *out : "";
}

// Integer + - * read their result before the overflow-checked builtin wrote it when the compiler evaluated call
// arguments left to right (clang): every integer sum, difference and product rendered as 0.
TEST(ChatTemplateFuzzRegression, IntegerArithmeticDoesNotDependOnArgumentEvaluationOrder) {
  EXPECT_EQ(render_ok("{{ 2 + 1 }}|{{ 2 - 5 }}|{{ 6 * 7 }}|{{ -3 }}|{{ 1 + 2 * 3 - 4 }}"), "3|-3|42|-3|3");
  EXPECT_EQ(render_ok("{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% endfor %}"
                      "{{ ns.n }}"),
            "6");
  EXPECT_FALSE(render("{{ 9223372036854775807 + 1 }}", nlohmann::ordered_json::object()).ok());
  EXPECT_FALSE(render("{{ 4611686018427387904 * 2 }}", nlohmann::ordered_json::object()).ok());
}

}  // namespace
}  // namespace rf::chat
