// Errors are values with line numbers; hostile templates (truncated, mutated, runaway) return errors, never
// crash or hang; the chat helper passes its variables.
#include <dirent.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "chat/chat_template.h"
#include "support/shared_data.h"

namespace rf::chat {
namespace {

using Json = nlohmann::ordered_json;

std::string error_of(const std::string& source, const Json& context = Json::object(), const RenderOptions& opts = {}) {
  const auto out = render(source, context, opts);
  if (out.ok()) return "<rendered: " + *out + ">";
  return out.error_message();
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(ChatTemplateErrors, RaiseExceptionIsAnErrorWithItsMessageAndLine) {
  const std::string e = error_of(
      "line one\n{% if messages[0].role == 'system' %}\n{{ raise_exception('System role not supported') }}{% endif %}",
      Json{{"messages", Json::parse(R"([{"role":"system","content":"x"}])")}});
  EXPECT_EQ(e, "chat template: line 3: System role not supported");
}

TEST(ChatTemplateErrors, UndefinedUsedInArithmeticAttributeOrCallRaises) {
  EXPECT_TRUE(contains(error_of("{{ functions + 'x' }}"), "'functions' is undefined"));
  EXPECT_TRUE(contains(error_of("{{ 'x' + functions }}"), "'functions' is undefined"));
  EXPECT_TRUE(contains(error_of("{{ x.y.z }}", Json{{"x", Json::object()}}), "'dict object' has no attribute 'y'"));
  EXPECT_TRUE(contains(error_of("{{ nothing() }}"), "'nothing' is undefined"));
  EXPECT_TRUE(contains(error_of("{{ l[3].role }}", Json{{"l", Json::array()}}), "'list object' has no element 3"));
  EXPECT_TRUE(contains(error_of("{% for x in 5 %}{% endfor %}"), "'int' object is not iterable"));
  EXPECT_TRUE(contains(error_of("{{ 'a' + 1 }}"), "unsupported operand"));
  EXPECT_TRUE(contains(error_of("{{ 1 // 0 }}"), "division or modulo by zero"));
}

TEST(ChatTemplateErrors, SyntaxErrorsNameTheLine) {
  EXPECT_EQ(error_of("a\nb\n{% if x %}\nc"),
            "chat template: line 4: unexpected end of template, expected 'elif', 'else', 'endif'");
  EXPECT_EQ(error_of("\n\n{% endfor %}"), "chat template: line 3: encountered unknown tag 'endfor'");
  EXPECT_EQ(error_of("{{ x | nosuchfilter }}"), "chat template: line 1: no filter named 'nosuchfilter'");
  EXPECT_EQ(error_of("{{ x is nosuchtest }}"), "chat template: line 1: no test named 'nosuchtest'");
  EXPECT_EQ(error_of("\n{% break %}"), "chat template: line 2: 'break' outside of a for loop");
  EXPECT_TRUE(contains(error_of("{{ 'abc }}"), "unterminated string literal"));
  EXPECT_TRUE(contains(error_of("{# never closed"), "missing end of comment tag"));
  EXPECT_TRUE(contains(error_of("{% raw %} never closed"), "missing end of raw directive"));
  EXPECT_TRUE(contains(error_of("{{ 1 + }}"), "unexpected end of print statement"));
  EXPECT_TRUE(contains(error_of("{{ (1 }}"), "unexpected '}'"));
  EXPECT_TRUE(contains(error_of("{% macro m(a, a) %}{% endmacro %}"), "duplicate argument"));
}

TEST(ChatTemplateErrors, MacroArgumentChecksFollowJinja) {
  EXPECT_TRUE(contains(error_of("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}"), "takes not more than 1 argument"));
  EXPECT_TRUE(contains(error_of("{% macro m(a) %}{% endmacro %}{{ m(b=1) }}"), "takes no keyword argument 'b'"));
}

TEST(ChatTemplateErrors, RunawayTemplatesHitLimitsInsteadOfHanging) {
  RenderOptions small;
  small.max_steps = 20000;
  small.max_output_bytes = 100000;
  small.max_elements = 100000;
  EXPECT_TRUE(contains(
      error_of("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}", Json::object(), small),
      "exceeded the limit"));
  EXPECT_TRUE(
      contains(error_of("{% for i in range(1000) %}{{ 'x' * 1000 }}{% endfor %}", Json::object(), small), "limit"));
  EXPECT_TRUE(contains(error_of("{{ 'x' * 1000000000000 }}", Json::object(), small), "limit"));
  EXPECT_TRUE(contains(error_of("{{ range(1000000000)|length }}", Json::object(), small), "list/dict elements"));
  EXPECT_TRUE(contains(
      error_of("{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
               Json::object(), small),
      "list/dict elements"));
  EXPECT_TRUE(contains(error_of("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"), "macro calls nested deeper"));
  EXPECT_TRUE(contains(error_of("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}"), "nesting"));
  EXPECT_TRUE(contains(error_of("{{ " + std::string(20000, '[') + std::string(20000, ']') + " }}"), "nesting"));
  std::string deep_ifs;
  for (int i = 0; i < 2000; ++i) deep_ifs += "{% if true %}";
  EXPECT_TRUE(contains(error_of(deep_ifs), "nesting"));
  EXPECT_TRUE(contains(error_of("{{ 2 ** 100 }}"), "integer overflow"));
}

TEST(ChatTemplateErrors, SelfReferencingValuesErrorInsteadOfRecursingForever) {
  EXPECT_TRUE(contains(error_of("{% set l = [] %}{{ l.append(l) }}{{ l }}"), "circular"));
  EXPECT_TRUE(contains(error_of("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns.me.me.me|string }}"), "circular"));
  EXPECT_TRUE(contains(error_of("{% set l = [] %}{{ l.append(l) }}{{ l|tojson }}"), "circular"));
  EXPECT_TRUE(contains(error_of("{% set l = [] %}{{ l.append(l) }}{{ l == l }}"), "circular"));
}

TEST(ChatTemplateErrors, NonObjectContextIsRejected) { EXPECT_FALSE(render("x", Json::array()).ok()); }

TEST(ChatTemplateApi, ParsedTemplateRendersManyChats) {
  auto tmpl = ChatTemplate::parse(
      "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{{ eos_token }}{% endfor %}"
      "{% if tools %}{{ tools|tojson }}{% endif %}{% if add_generation_prompt %}<assistant>{% endif %}");
  ASSERT_TRUE(tmpl.ok()) << tmpl.error_message();
  ChatRequest req;
  req.messages = Json::parse(R"([{"role":"user","content":"Hi"}])");
  req.bos_token = "<s>";
  req.eos_token = "</s>";
  EXPECT_EQ(*tmpl->render_chat(req), "<s><user>Hi</s>");
  req.add_generation_prompt = true;
  req.tools = Json::parse(R"([{"name":"f","z":1,"a":2}])");
  EXPECT_EQ(*tmpl->render_chat(req), R"(<s><user>Hi</s>[{"name": "f", "z": 1, "a": 2}]<assistant>)");
}

// ---- fuzz-ish robustness: truncations and random mutations must return (ok or error), never crash or hang ----

constexpr const char* kSampleTemplate = R"({%- set ns = namespace(sys='', n=0) -%}
{%- macro fmt(m, i=0) -%}{{ '<|' ~ m.role ~ '|>' }}{{ m.content | trim }}{% if i > 0 %}#{{ i }}{% endif %}{%- endmacro -%}
{%- for m in messages if m.role != 'tool' -%}
  {%- if m.role == 'system' -%}{%- set ns.sys = m.content -%}{%- continue -%}{%- endif -%}
  {{ fmt(m, loop.index0) }}{% set ns.n = ns.n + 1 %}
  {%- if loop.last and ns.n > 100 %}{% break %}{% endif -%}
{%- else -%}{{ raise_exception('no messages') }}
{%- endfor -%}
{# comment #}{% raw %}{{ raw }}{% endraw %}
{{ ns.sys[1:-1] | upper }}{{ (messages | map(attribute='role') | unique | list) | tojson(indent=2) }}
{%- if add_generation_prompt %}{{ '<|assistant|>' if bos_token else 'x' }}{% endif %})";

std::vector<std::string> fuzz_seeds() {
  std::vector<std::string> seeds = {kSampleTemplate};
  const auto dir = test::shared_path("chat-templates");
  if (!dir) return seeds;
  DIR* d = opendir(dir->c_str());
  if (d == nullptr) return seeds;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() < 6 || name.substr(name.size() - 6) != ".jinja") continue;
    std::ifstream in(*dir + "/" + name, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    seeds.push_back(ss.str());
  }
  closedir(d);
  return seeds;
}

Json fuzz_context() {
  return Json::parse(R"({"messages": [{"role": "system", "content": " sys "}, {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": null, "tool_calls": [{"id": "abcdefghi", "type": "function",
      "function": {"name": "f", "arguments": {"a": 1}}}]},
    {"role": "tool", "content": "r", "tool_call_id": "abcdefghi"}, {"role": "user", "content": "again"}],
    "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>",
    "tools": [{"type": "function", "function": {"name": "f", "description": "d",
      "parameters": {"type": "object", "properties": {"a": {"type": "integer", "description": "x"}}, "required": ["a"]}}}]})");
}

TEST(ChatTemplateFuzz, TruncatedAndMutatedTemplatesNeverCrashOrHang) {
  const bool light = std::getenv("ROCMFORGE_SLOW_TESTS_SKIP") != nullptr;
  const Json ctx = fuzz_context();
  RenderOptions opts;
  opts.max_steps = 200000;
  opts.max_output_bytes = 1 << 20;
  opts.max_elements = 200000;
  std::mt19937 rng(1234);
  static const char* const kSnippets[] = {"{{",
                                          "}}",
                                          "{%",
                                          "%}",
                                          "{#",
                                          "#}",
                                          "-",
                                          "(",
                                          ")",
                                          "[",
                                          "]",
                                          "'",
                                          "\"",
                                          "{% endfor %}",
                                          "{% for x in messages %}",
                                          "{% if x %}",
                                          "|",
                                          ".",
                                          "loop",
                                          "{% macro m() %}{{ m() }}",
                                          "**",
                                          "~",
                                          " in ",
                                          " is not ",
                                          "\n",
                                          "\\"};
  int n_runs = 0;
  int n_errors = 0;
  for (const std::string& seed : fuzz_seeds()) {
    const size_t stride = std::max<size_t>(1, seed.size() / (light ? 8 : 80));
    for (size_t cut = 0; cut < seed.size(); cut += stride) {
      const auto out = render(seed.substr(0, cut), ctx, opts);
      ++n_runs;
      n_errors += out.ok() ? 0 : 1;
    }
    for (int i = 0; i < (light ? 8 : 80); ++i) {
      std::string s = seed;
      const int n_edits = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < n_edits && !s.empty(); ++k) {
        const size_t pos = rng() % s.size();
        switch (rng() % 4) {
          case 0:
            s[pos] = static_cast<char>(rng() % 256);
            break;
          case 1:
            s.erase(pos, 1 + rng() % 8);
            break;
          case 2:
            s.insert(pos, kSnippets[rng() % (sizeof(kSnippets) / sizeof(kSnippets[0]))]);
            break;
          default:
            s.insert(pos, s.substr(rng() % s.size(), rng() % 16));
            break;
        }
      }
      const auto out = render(s, ctx, opts);
      ++n_runs;
      n_errors += out.ok() ? 0 : 1;
      if (!out.ok()) {
        EXPECT_EQ(out.error_message().rfind("chat template: ", 0), 0u) << out.error_message();
      }
    }
  }
  EXPECT_GT(n_runs, 0);
  EXPECT_GT(n_errors, 0);  // the mutations do produce malformed templates
}

}  // namespace
}  // namespace rf::chat
