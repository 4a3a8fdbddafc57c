// Writes the seed corpus of chat_template_fuzz into a folder: a flags byte (chat_template_fuzz.h) followed by a
// template source; a few built-in templates covering the statement and expression forms, and the real templates of
// ../shared/chat-templates when that folder exists.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "chat_template_fuzz.h"
#include "fuzz_support.h"

namespace {

bool save(const std::string& dir, const std::string& name, uint8_t flags, const std::string& source) {
  const std::string path = dir + "/" + name + "_" + std::to_string(flags);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  bool ok = std::fputc(flags, f) != EOF && std::fwrite(source.data(), 1, source.size(), f) == source.size();
  return std::fclose(f) == 0 && ok;
}

// Small templates written for the fuzzer: each exercises a different part of the language.
const char* const kBuiltins[] = {
    // ChatML-style turns with a generation prompt.
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
    // System message split off, role alternation enforced with raise_exception, whitespace control.
    "{{- bos_token }}{%- if messages[0].role == 'system' -%}{%- set sys = messages[0].content -%}"
    "{%- set rest = messages[1:] -%}{%- else -%}{%- set sys = none -%}{%- set rest = messages -%}{%- endif -%}"
    "{%- for m in rest -%}{%- if (m.role == 'user') != (loop.index0 % 2 == 0) and m.role != 'tool' -%}"
    "{{- raise_exception('roles must alternate') -}}{%- endif -%}"
    "{%- if loop.first and sys %}[SYS]{{ sys | trim }}[/SYS]{% endif -%}"
    "[{{ m.role | upper }}] {{ m.content if m.content is string else '' }}{{ eos_token if m.role == 'assistant' }}"
    "{%- endfor -%}",
    // Tools as JSON, namespaces, tool calls, filters and tests.
    "{%- set ns = namespace(found=false, n=0) -%}{%- if tools is defined and tools -%}"
    "{{ tools | tojson(indent=2) }}\n{%- for t in tools %}{{ t.function.name ~ ': ' ~ t.function.description }}"
    "{%- endfor %}{%- endif -%}{%- for m in messages -%}{%- set ns.n = ns.n + 1 -%}"
    "{%- if m.tool_calls is defined -%}{%- for c in m.tool_calls -%}{%- set ns.found = true -%}"
    "<call>{{ c.function.name }}({{ c.function.arguments | tojson }})</call>{%- endfor -%}"
    "{%- elif m.role == 'tool' %}<result>{{ m.content | replace('\"', \"'\") }}</result>"
    "{%- else %}{{ m.role[:1] | upper }}: {{ m.content | default('', true) | length }}{% endif -%}"
    "{%- endfor -%}{{ ns.n }} {{ ns.found }} {{ strftime_now('%d %b %Y') }} {{ date_string | default('x') }}",
    // Macros, call blocks, filter blocks, loops with else/break/continue, slicing and arithmetic.
    "{% macro wrap(tag, body='') -%}{{ varargs | length }}<{{ tag }}{% for k, v in kwargs | dictsort %} {{ k }}="
    "\"{{ v }}\"{% endfor %}>{{ body }}{{ caller() if caller is defined }}</{{ tag }}>{%- endmacro %}"
    "{% call wrap('b', x=1, y='z') %}inner {{ 7 // 2 }} {{ 7 % 3 }} {{ 2 ** 10 }} {{ -3.5 | abs | round }}"
    "{% endcall %}{% filter upper %}{% for i in range(10) if i is odd %}{% if i > 6 %}{% break %}{% endif %}"
    "{{ i }}{{ ',' if not loop.last }}{% else %}none{% endfor %}{% endfilter %}"
    "{{ 'abcdef'[::-2] }}{{ [3, 1, 2] | sort | join('-') }}{{ {'a': 1, 'b': [2]} | items | list }}"
    "{% set a, b = 1, 2 %}{{ a + b }}{% with q = messages | length %}{{ q }}{% endwith %}{# comment #}"
    "{% raw %}{{ not rendered }}{% endraw %}",
    // Methods and string handling of real templates.
    "{%- for m in messages | selectattr('role', 'equalto', 'user') | list -%}"
    "{{ m.content.strip().split('\\n')[0].replace('?', '!').title() }}|{{ m.content.startswith('Hi') }}"
    "|{{ m.content.endswith('bye') }}|{{ m.get('name', 'anon') }}|{{ m.keys() | list | length }}\n"
    "{%- endfor -%}{{ messages | map(attribute='role') | unique | join(',') }}"
    "{{ messages | rejectattr('content', 'none') | map(attribute='content') | map('length') | sum }}"
    "{{ '%s-%d' | format('a', 3) }}{{ 'x' * 5 }}{{ messages[-1]['content'] | wordcount }}",
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  bool ok = true;
  const uint8_t all = rf::fuzz::kChatGenerationPrompt | rf::fuzz::kChatTools | rf::fuzz::kChatSystem;
  int index = 0;
  for (const char* source : kBuiltins) {
    const std::string name = "builtin" + std::to_string(index++);
    ok = ok && save(dir, name, 0, source) && save(dir, name, all, source);
  }
  if (auto shared = rf::fuzz::shared_dir()) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(*shared / "chat-templates", ec)) {
      if (entry.path().extension() != ".jinja") continue;
      std::ifstream in(entry.path(), std::ios::binary);
      const std::string source((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      const std::string name = entry.path().stem().string();
      ok = ok && save(dir, name, 0, source) && save(dir, name, all, source);
    }
  }
  return ok ? 0 : 1;
}
