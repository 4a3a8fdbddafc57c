// Unit tests of the template engine, one per feature. Expected renders come from the reference engine
// (Python jinja2 3.1 configured as Hugging Face does: trim_blocks, lstrip_blocks, loopcontrols, json.dumps tojson).
#include <gtest/gtest.h>

#include <ctime>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/chat_template.h"

namespace rf::chat {
namespace {

struct Case {
  const char* source;
  const char* context;  // JSON object
  const char* expected;
};

RenderOptions fixed_time_options() {
  RenderOptions opts;
  std::tm tm{};
  tm.tm_year = 2026 - 1900;
  tm.tm_mon = 0;
  tm.tm_mday = 15;
  tm.tm_wday = 4;
  tm.tm_yday = 14;
  opts.now = tm;
  return opts;
}

void expect_renders(const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    const auto out = render(c.source, nlohmann::ordered_json::parse(c.context), fixed_time_options());
    if (!out.ok()) {
      ADD_FAILURE() << "template:\n" << c.source << "\nerror: " << out.error_message();
      continue;
    }
    EXPECT_EQ(*out, c.expected) << "template:\n" << c.source;
  }
}

TEST(ChatTemplateEngine, TrimBlocksAndLstripBlocks) {
  expect_renders({
      {R"X({{ 'a' }}
{% if true %}
  x
{% endif %}
  {% if true %}y{% endif %}
z
)X",
       R"X({})X",
       R"X(a
  x
yz)X"},
      {R"X(x {% if true %}
  y
{% endif %}   
  z)X",
       R"X({})X",
       R"X(x   y
   
  z)X"},
      {R"X(a
    {%+ if true %}b{% endif %}
)X",
       R"X({})X",
       R"X(a
    b)X"},
      {R"X(  {{ 'v' }}  
  {% set x = 1 %}
{{ x }})X",
       R"X({})X",
       R"X(  v  
1)X"},
      {R"X({% if true %}  
A{% endif %})X",
       R"X({})X",
       R"X(  
A)X"},
  });
}

TEST(ChatTemplateEngine, WhitespaceControlMarkers) {
  expect_renders({
      {R"X(  {%- if true -%}  a  {%- endif -%}  b)X",
       R"X({})X",
       R"X(ab)X"},
      {R"X({{- ' a ' -}}  {{ 'b' }}
{#- f -#}   g)X",
       R"X({})X",
       R"X( a bg)X"},
      {R"X({%- for m in ['a', 'b'] %}
    {{- m }}
{%- endfor %}
)X",
       R"X({})X",
       R"X(ab)X"},
  });
}

TEST(ChatTemplateEngine, CommentsAreDropped) {
  expect_renders({
      {R"X(a{# c #}b
{# d #}
  {# e #}  f)X",
       R"X({})X",
       R"X(ab
  f)X"},
  });
}

TEST(ChatTemplateEngine, RawBlocksAreVerbatim) {
  expect_renders({
      {R"X({% raw %}{{ x }}{% if %}{% endraw %}|{%- raw -%}  {{ y }}  {%- endraw %}|)X",
       R"X({})X",
       R"X({{ x }}{% if %}|{{ y }}|)X"},
  });
}

TEST(ChatTemplateEngine, IfElifElse) {
  expect_renders({
      {R"X({% if a %}A{% elif b %}B{% else %}C{% endif %})X",
       R"X({"b": 1})X",
       R"X(B)X"},
      {R"X({% if a %}A{% elif b %}B{% else %}C{% endif %})X",
       R"X({"a": [1]})X",
       R"X(A)X"},
      {R"X({% if a %}A{% elif b %}B{% else %}C{% endif %})X",
       R"X({"a": [], "b": ""})X",
       R"X(C)X"},
  });
}

TEST(ChatTemplateEngine, ForLoopVariables) {
  expect_renders({
      {R"X({% for x in [1,2,3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }};{% endfor %})X",
       R"X({})X",
       R"X(10TrueFalse332;21FalseFalse321;32FalseTrue310;)X"},
      {R"X({% for m in msgs %}{{ loop.previtem.x if loop.previtem else 'none' }}-{{ loop.nextitem.x if loop.nextitem is defined else 'end' }};{% endfor %})X",
       R"X({"msgs": [{"x": 1}, {"x": 2}, {"x": 3}]})X",
       R"X(none-2;1-3;2-end;)X"},
      {R"X({% for i in [1,2] %}{% for j in [3,4] %}{{ loop.index }}{{ i }}{{ j }} {% endfor %}{{ loop.index }}|{% endfor %})X",
       R"X({})X",
       R"X(113 214 1|123 224 2|)X"},
  });
}

TEST(ChatTemplateEngine, ForElseFilterAndUnpacking) {
  expect_renders({
      {R"X({% for x in [] %}a{% else %}empty{% endfor %})X",
       R"X({})X",
       R"X(empty)X"},
      {R"X({% for x in range(6) if x % 2 == 0 %}{{ x }}/{{ loop.length }} {% endfor %})X",
       R"X({})X",
       R"X(0/3 2/3 4/3 )X"},
      {R"X({% for k, v in d|items %}{{ k }}={{ v }},{% endfor %}{% for k in d %}{{ k }}{% endfor %}{% for k, v in d.items() %}{{k}}{{v}}{% endfor %})X",
       R"X({"d": {"b": 1, "a": 2}})X",
       R"X(b=1,a=2,bab1a2)X"},
      {R"X({% for a, b in [(1, 2), (3, 4)] %}{{ a }}{{ b }}{% endfor %}{% for x in 'ab' %}{{ x }}.{% endfor %}{% for x in undefined_thing %}never{% endfor %})X",
       R"X({})X",
       R"X(1234a.b.)X"},
  });
}

TEST(ChatTemplateEngine, LoopControls) {
  expect_renders({
      {R"X({% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %})X",
       R"X({})X",
       R"X(0134)X"},
  });
}

TEST(ChatTemplateEngine, SetScopingAndNamespace) {
  expect_renders({
      {R"X({% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}{% if true %}{% set x = 3 %}{% endif %}{{ x }})X",
       R"X({})X",
       R"X(213)X"},
      {R"X({% set ns = namespace(x=1, l=[]) %}{% for i in [1,2] %}{% set ns.x = ns.x + i %}{% set ns.l = ns.l + [i] %}{% endfor %}{{ ns.x }}{{ ns.l }})X",
       R"X({})X",
       R"X(4[1, 2])X"},
      {R"X({% set ns = namespace() %}{% set ns.index = 0 %}{% set ns.index = ns.index + 1 %}{{ ns.index }})X",
       R"X({})X",
       R"X(1)X"},
      {R"X({% set x %}hello {{ 'w' }}{% endset %}[{{ x }}]{% set y | upper %}abc{% endset %}{{ y }}{% set a, b = 1, 2 %}{{ a + b }})X",
       R"X({})X",
       R"X([hello w]ABC3)X"},
  });
}

TEST(ChatTemplateEngine, MacrosAndCallBlocks) {
  expect_renders({
      {R"X({% macro m(a, b=2, c='z') %}{{ a }}-{{ b }}-{{ c }}{% endmacro %}{{ m(1) }} {{ m(1, 3) }} {{ m(1, c=5) }} {{ m() }})X",
       R"X({})X",
       R"X(1-2-z 1-3-z 1-2-5 -2-z)X"},
      {R"X({% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, x=4) }})X",
       R"X({})X",
       R"X(1(2, 3){'x': 4})X"},
      {R"X({% macro w() %}<{{ caller() }}>{% endmacro %}{% call w() %}inner{% endcall %})X",
       R"X({})X",
       R"X(<inner>)X"},
      {R"X({% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}{{ 'x' + f(1) }})X",
       R"X({})X",
       R"X(321x1)X"},
      {R"X({% set ns = namespace(v=0) %}{% macro bump() %}{% set ns.v = ns.v + 1 %}{% endmacro %}{{ bump() }}{{ bump() }}{{ ns.v }})X",
       R"X({})X",
       R"X(2)X"},
  });
}

TEST(ChatTemplateEngine, FilterAndWithBlocks) {
  expect_renders({
      {R"X({% filter upper %}abc {{ 'd' }}{% endfilter %}{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a }})X",
       R"X({})X",
       R"X(ABC D3)X"},
  });
}

TEST(ChatTemplateEngine, TojsonMatchesPythonJsonDumps) {
  expect_renders({
      {R"X({{ x|tojson }} {{ x|tojson(indent=2) }} {{ x|tojson(sort_keys=true) }} {{ x|tojson(separators=(',', ':')) }})X",
       R"X({"x": {"b": [1, 2.5, null, true], "a": "é\"\n<>&'\u0001", "c": {}}})X",
       R"X({"b": [1, 2.5, null, true], "a": "é\"\n<>&'\u0001", "c": {}} {
  "b": [
    1,
    2.5,
    null,
    true
  ],
  "a": "é\"\n<>&'\u0001",
  "c": {}
} {"a": "é\"\n<>&'\u0001", "b": [1, 2.5, null, true], "c": {}} {"b":[1,2.5,null,true],"a":"é\"\n<>&'\u0001","c":{}})X"},
      {R"X({{ 'é'|tojson }} {{ 'é'|tojson(ensure_ascii=true) }} {{ '😀'|tojson(true) }} {{ 1e20|tojson }} {{ 1.0|tojson }} {{ [[], {}]|tojson(indent=4) }} {{ none|tojson }})X",
       R"X({})X",
       R"X("é" "\u00e9" "\ud83d\ude00" 1e+20 1.0 [
    [],
    {}
] null)X"},
  });
}

TEST(ChatTemplateEngine, StringFilters) {
  expect_renders({
      {R"X({{ '  ab  '|trim }}|{{ 'xxaxx'|trim('x') }}|{{ 'AbC'|upper }}{{ 'AbC'|lower }}|{{ 'hello world'|capitalize }}|{{ 'hello wORLD-foo (bar)'|title }}|{{ 'a-b-c'|replace('-', '+') }}|{{ 'aaa'|replace('a', 'b', 2) }}|{{ '<a&b>'|escape }}|{{ 'x'|safe }}|{{ 'abc'|center(9) }}|)X",
       R"X({})X",
       R"X(ab|a|ABCabc|Hello world|Hello World-Foo (Bar)|a+b+c|bba|&lt;a&amp;b&gt;|x|   abc   |)X"},
      {R"X({{ '  line1
line2

line3'|indent(2) }}|{{ 'a
b'|indent(2, true) }}|{{ 'a

b'|indent(2, blank=true) }})X",
       R"X({})X",
       R"X(  line1
  line2

  line3|  a
  b|a
  
  b)X"},
  });
}

TEST(ChatTemplateEngine, SequenceFilters) {
  expect_renders({
      {R"X({{ [1,2,3]|length }} {{ 'héllo'|length }} {{ d|length }} {{ undefined_x|length }} {{ [1,2,3]|count }})X",
       R"X({"d": {"a": 1}})X",
       R"X(3 5 1 0 3)X"},
      {R"X({{ users|selectattr('active')|map(attribute='name')|join(', ') }}|{{ users|rejectattr('active')|map(attribute='name')|list }}|{{ users|selectattr('role', 'equalto', 'admin')|list|length }}|{{ users|selectattr('missing', 'defined')|list }}|{{ none|selectattr('x')|list }})X",
       R"X({"users": [{"name": "a", "active": true, "role": "admin"}, {"name": "b", "active": false, "role": "u"}]})X",
       R"X(a|['b']|1|[]|[])X"},
      {R"X({{ [1,2,3]|first }} {{ [1,2,3]|last }} {{ 'abc'|list }} {{ [3,1,3,'a','A']|unique|list }} {{ ['b','a','C']|sort }} {{ [1,2]|sum }} {{ [3,1,2]|max }} {{ [3,1,2]|min }} {{ 'abc'|reverse }} {{ [1,2]|reverse|list }})X",
       R"X({})X",
       R"X(1 3 ['a', 'b', 'c'] [3, 1, 'a'] ['a', 'b', 'C'] 3 3 1 cba [2, 1])X"},
      {R"X({{ [1, 2, 3] | map('string') | join('') }} {{ ['a', 'b'] | map('upper') | list }} {{ [1, 0, 2]|select|list }} {{ [1, 0, 2]|reject|list }} {{ [1,2,3,4]|select('odd')|list }} {{ [1,2,3]|join('-') }} {{ [{'a':1},{'a':2}]|join(',', attribute='a') }})X",
       R"X({})X",
       R"X(123 ['A', 'B'] [1, 2] [0] [1, 3] 1-2-3 1,2)X"},
  });
}

TEST(ChatTemplateEngine, NumberFilters) {
  expect_renders({
      {R"X({{ 42|string ~ 'x' }} {{ '42'|int + 1 }} {{ '3.7'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ '2.5'|float }} {{ 3|float }} {{ 2.5|round }} {{ 3.14159|round(2) }} {{ 3.5|round }} {{ 7|round }} {{ 2.1|round(0, 'ceil') }} {{ -5|abs }} {{ -2.5|abs }})X",
       R"X({})X",
       R"X(42x 43 3 0 7 2.5 3.0 2.0 3.14 4.0 7 3.0 5 2.5)X"},
  });
}

TEST(ChatTemplateEngine, DefaultFilter) {
  expect_renders({
      {R"X({{ x|default('d') }} {{ none|default('d') }} {{ ''|default('d', true) }} {{ ''|d('e', boolean=true) }} {{ 0|default(5) }} {{ x|d }}|)X",
       R"X({})X",
       R"X(d None d e 0 |)X"},
  });
}

TEST(ChatTemplateEngine, Tests) {
  expect_renders({
      {R"X({{ x is defined }} {{ x is undefined }} {{ none is none }} {{ 'a' is string }} {{ 1 is number }} {{ true is number }} {{ d is mapping }} {{ [1] is iterable }} {{ 'a' is iterable }} {{ d is sequence }} {{ 1 is equalto 1 }} {{ true is true }} {{ 1 is true }} {{ false is false }} {{ 2 is in [1,2] }} {{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ x is not defined }} {{ 1 is integer }} {{ 1.0 is float }} {{ 1 is eq 1 }} {{ 1 is ne 2 }})X",
       R"X({"d": {}})X",
       R"X(False True True True True True True True True True True True False True True True True True True True True True True)X"},
  });
}

TEST(ChatTemplateEngine, Slicing) {
  expect_renders({
      {R"X({{ [1,2,3,4,5][1:3] }} {{ [1,2,3,4,5][-2:] }} {{ [1,2,3,4,5][::-1] }} {{ [1,2,3,4,5][::2] }} {{ 'hello'[1:-1] }} {{ 'hello'[-1] }} {{ 'héllo'[1] }} {{ [1,2,3][5:] }} {{ [1,2,3][-10:2] }} {{ 'abcdef'[4:1:-1] }} {{ [1,2,3][:-1] }})X",
       R"X({})X",
       R"X([2, 3] [4, 5] [5, 4, 3, 2, 1] [1, 3, 5] ell o é [] [1, 2] edc [1, 2])X"},
  });
}

TEST(ChatTemplateEngine, OperatorsFollowPython) {
  expect_renders({
      {R"X({{ 1 in [1,2] }} {{ 3 not in [1,2] }} {{ 'ab' in 'xabx' }} {{ 'k' in d }} {{ 'z' not in d }} {{ 1 ~ 2 ~ 'x' ~ none ~ undefined_y }} {{ x is not none }})X",
       R"X({"d": {"k": 1}})X",
       R"X(True True True True True 12xNone True)X"},
      {R"X({{ 'a' if true else 'b' }} {{ 'a' if false else 'b' }} [{{ 'a' if false }}] {{ 1 if x is defined else 2 }})X",
       R"X({})X",
       R"X(a b [] 2)X"},
      {R"X({{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 7 / 2 }} {{ 6 / 2 }} {{ 1 + 2.5 }} {{ 3 * 'ab' }} {{ 'ab' * 2 }} {{ [1] * 3 }} {{ [1] + [2] }} {{ 2 ** -1 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ true + 1 }} {{ -(2) ** 2 }} {{ 2 ** 3 ** 2 }})X",
       R"X({})X",
       R"X(3 -4 1 2 1024 3.5 3.0 3.5 ababab abab [1, 1, 1] [1, 2] 0.5 3.0 0.5 2 4 64)X"},
      {R"X({{ 0 or 'x' }} {{ 1 and 'y' }} {{ [] or [] }} {{ none or 0 }} {{ not [] }} {{ not 'a' }} {{ '' == none }} {{ 1 == true }} {{ [1,2] == [1,2] }} {{ {'a':1} == {'a':1} }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' < 'b' }} {{ 2 == 2.0 }})X",
       R"X({})X",
       R"X(x y [] 0 True False False True True True True False True True)X"},
      {R"X({{ '%s-%d' % ('a', 3) }} {{ '%05.1f' % 3.14159 }} {{ '%s' % 'x' }} {{ '%d%%' % 50 }})X",
       R"X({})X",
       R"X(a-3 003.1 x 50%)X"},
  });
}

TEST(ChatTemplateEngine, StringMethods) {
  expect_renders({
      {R"X({{ ' a b '.strip() }}|{{ 'xxa'.lstrip('x') }}|{{ 'axx'.rstrip('x') }}|{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }} {{ 'a,b,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a,b,c'.split(',', 1) }} {{ 'a</think>b'.split('</think>')[-1] }} {{ 'AbC'.upper() }} {{ 'AbC'.lower() }} {{ 'a-b'.replace('-', '_') }} {{ "they're bill's".title() }} {{ '{} and {}'.format(1, 'x') }} {{ '{0}{name}'.format(1, name=2) }} {{ ', '.join(['a', 'b']) }})X",
       R"X({})X",
       R"X(a b|a|a|True True ['a', 'b', 'c'] ['a', 'b'] ['a', 'b,c'] b ABC abc a_b They'Re Bill'S 1 and x 12 a, b)X"},
  });
}

TEST(ChatTemplateEngine, DictAndListMethods) {
  expect_renders({
      {R"X({{ d.items()|list }} {{ d.keys()|list }} {{ d.values()|list }} {{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 5) }} {{ d['a'] }} {{ d.a }} [{{ d.zz }}])X",
       R"X({"d": {"a": 1, "b": [2]}})X",
       R"X([('a', 1), ('b', [2])] ['a', 'b'] [1, [2]] 1 None 5 1 1 [])X"},
      {R"X({% set l = [1] %}{{ l.append(2) }}{% set _ = l.append(3) %}{{ l }})X",
       R"X({})X",
       R"X(None[1, 2, 3])X"},
  });
}

TEST(ChatTemplateEngine, ValuePrintingFollowsPythonStr) {
  expect_renders({
      {R"X({{ none }} {{ true }} {{ false }} {{ [none, true, 'a', 1.5, {'k': 'v'}] }} {{ (1,) }} {{ (1, 2) }} {{ 1.0 }} {{ 1e16 }} {{ 1e-5 }} {{ 0.1 + 0.2 }} {{ 123456789.0 }} {{ ["it's", 'q"'] }})X",
       R"X({})X",
       R"X(None True False [None, True, 'a', 1.5, {'k': 'v'}] (1,) (1, 2) 1.0 1e+16 1e-05 0.30000000000000004 123456789.0 ["it's", 'q"'])X"},
      {R"X({{ 'it''s' }} {{ "a\tb" }} {{ 'x\ny' }} {{ '\u00e9' }} {{ range(3)|list }} {{ range(1, 10, 3)|list }} {{ range(5, 0, -2)|list }} {{ dict(a=1, b=2) }} {{ namespace(a=1).a }})X",
       R"X({})X",
       R"X(its a	b x
y é [0, 1, 2] [1, 4, 7] [5, 3, 1] {'a': 1, 'b': 2} 1)X"},
  });
}

TEST(ChatTemplateEngine, GlobalsStrftimeNow) {
  expect_renders({
      {R"X({{ strftime_now('%d %b %Y') }} {{ strftime_now('%Y-%m-%d') }})X",
       R"X({})X",
       R"X(15 Jan 2026 2026-01-15)X"},
  });
}

TEST(ChatTemplateEngine, UndefinedPrintsEmptyAndMissingItemsAreUndefined) {
  expect_renders({
      {R"X([{{ x }}] [{{ d.missing }}] [{{ d['missing'] }}] [{{ l[9] }}] [{{ none.x }}] {{ d.missing is defined }} {{ l[9] is defined }})X",
       R"X({"d": {}, "l": [1]})X",
       R"X([] [] [] [] [] False False)X"},
  });
}

}  // namespace
}  // namespace rf::chat
