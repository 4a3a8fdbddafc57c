// String helpers with Python str semantics over UTF-8 bytes: code-point lengths and offsets, Python's
// whitespace set, strip/split/replace, case mapping (ASCII letters only), repr and JSON quoting.
// Invalid UTF-8 bytes count as one character each and are kept byte-for-byte.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rf::chat::text {

// One code point starting at byte `pos`; `*len` receives its byte length (1 for an invalid byte).
char32_t decode_at(std::string_view s, size_t pos, size_t* len);
void append_utf8(std::string& out, char32_t c);

// Number of characters (code points).
size_t char_count(std::string_view s);
// Byte offset of every character start, plus s.size() at the end (size char_count + 1).
std::vector<size_t> char_offsets(std::string_view s);

// Python str.isspace() for one code point.
bool is_space(char32_t c);

// str.strip / lstrip / rstrip. `chars` null: whitespace; else the set of code points in *chars.
std::string strip(std::string_view s, bool left, bool right, const std::string* chars = nullptr);

// str.split(): on whitespace runs (sep null) or on an exact non-empty separator; maxsplit < 0: unlimited.
std::vector<std::string> split(std::string_view s, const std::string* sep, int64_t maxsplit);
// str.rsplit() with the same arguments.
std::vector<std::string> rsplit(std::string_view s, const std::string* sep, int64_t maxsplit);
// str.splitlines() (without keepends).
std::vector<std::string> splitlines(std::string_view s);

// str.replace(old, new, count); count < 0: all.
std::string replace(std::string_view s, std::string_view from, std::string_view to, int64_t count);

std::string upper(std::string_view s);
std::string lower(std::string_view s);
// str.capitalize(): first character upper, the rest lower.
std::string capitalize(std::string_view s);
// str.title(): a letter after a non-letter is upper, other letters lower.
std::string py_title(std::string_view s);
// Jinja's `title` filter: words split on runs of '-', whitespace, '(', '{', '[', '<'; each word capitalized
// on its first character, the rest lowered.
std::string jinja_title(std::string_view s);

// Python repr() of a str: quotes chosen as Python does, escapes for \\ \n \r \t, control characters and the quote.
std::string repr(std::string_view s);
// A JSON string literal as Python json.dumps writes it (ensure_ascii escapes every non-ASCII character).
void json_quote(std::string& out, std::string_view s, bool ensure_ascii);

// Python repr() of a float ("1.0", "1e+16", "1e-05", "inf", "nan").
std::string float_repr(double v);

}  // namespace rf::chat::text
