#include "chat/text_util.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace rf::chat::text {

char32_t decode_at(std::string_view s, size_t pos, size_t* len) {
  const auto b0 = static_cast<unsigned char>(s[pos]);
  size_t n = 0;
  char32_t c = 0;
  if (b0 < 0x80) {
    *len = 1;
    return b0;
  } else if ((b0 & 0xE0) == 0xC0) {
    n = 2;
    c = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    n = 3;
    c = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    n = 4;
    c = b0 & 0x07;
  } else {
    *len = 1;
    return 0xDC00 + b0;  // invalid lead byte: a lone surrogate stand-in, as Python's surrogateescape
  }
  if (pos + n > s.size()) {
    *len = 1;
    return 0xDC00 + b0;
  }
  for (size_t i = 1; i < n; ++i) {
    const auto b = static_cast<unsigned char>(s[pos + i]);
    if ((b & 0xC0) != 0x80) {
      *len = 1;
      return 0xDC00 + b0;
    }
    c = (c << 6) | (b & 0x3F);
  }
  *len = n;
  return c;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

size_t char_count(std::string_view s) {
  size_t n = 0;
  for (size_t pos = 0, len = 0; pos < s.size(); pos += len, ++n) decode_at(s, pos, &len);
  return n;
}

std::vector<size_t> char_offsets(std::string_view s) {
  std::vector<size_t> offs;
  size_t len = 0;
  for (size_t pos = 0; pos < s.size(); pos += len) {
    offs.push_back(pos);
    decode_at(s, pos, &len);
  }
  offs.push_back(s.size());
  return offs;
}

bool is_space(char32_t c) {
  // Python's whitespace: bidirectional classes WS, B, S and category Zs.
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

namespace {

bool in_set(char32_t c, const std::string* chars) {
  if (chars == nullptr) return is_space(c);
  size_t len = 0;
  for (size_t p = 0; p < chars->size(); p += len) {
    if (decode_at(*chars, p, &len) == c) return true;
  }
  return false;
}

bool is_ascii_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
char to_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; }
char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

}  // namespace

std::string strip(std::string_view s, bool left, bool right, const std::string* chars) {
  const std::vector<size_t> offs = char_offsets(s);
  size_t first = 0;
  size_t last = offs.size() - 1;  // character index one past the end
  size_t len = 0;
  if (left) {
    while (first < last && in_set(decode_at(s, offs[first], &len), chars)) ++first;
  }
  if (right) {
    while (last > first && in_set(decode_at(s, offs[last - 1], &len), chars)) --last;
  }
  return std::string(s.substr(offs[first], offs[last] - offs[first]));
}

std::vector<std::string> split(std::string_view s, const std::string* sep, int64_t maxsplit) {
  std::vector<std::string> parts;
  if (sep != nullptr) {
    size_t start = 0;
    while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
      const size_t hit = s.find(*sep, start);
      if (hit == std::string_view::npos) break;
      parts.emplace_back(s.substr(start, hit - start));
      start = hit + sep->size();
    }
    parts.emplace_back(s.substr(start));
    return parts;
  }
  size_t pos = 0;
  size_t len = 0;
  while (true) {
    while (pos < s.size() && is_space(decode_at(s, pos, &len))) pos += len;
    if (pos >= s.size()) break;
    if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) >= maxsplit) {
      // The remainder, with trailing whitespace removed, is the last part.
      parts.push_back(strip(s.substr(pos), false, true));
      break;
    }
    const size_t begin = pos;
    while (pos < s.size() && !is_space(decode_at(s, pos, &len))) pos += len;
    parts.emplace_back(s.substr(begin, pos - begin));
  }
  return parts;
}

std::vector<std::string> rsplit(std::string_view s, const std::string* sep, int64_t maxsplit) {
  if (maxsplit < 0) return split(s, sep, maxsplit);
  std::vector<std::string> parts;
  if (sep != nullptr) {
    size_t end = s.size();
    while (static_cast<int64_t>(parts.size()) < maxsplit) {
      if (end < sep->size()) break;
      const size_t hit = s.rfind(*sep, end - sep->size());
      if (hit == std::string_view::npos) break;
      parts.emplace_back(s.substr(hit + sep->size(), end - hit - sep->size()));
      end = hit;
    }
    parts.emplace_back(s.substr(0, end));
  } else {
    const std::vector<size_t> offs = char_offsets(s);
    size_t i = offs.size() - 1;  // character index one past the end
    size_t len = 0;
    while (true) {
      while (i > 0 && is_space(decode_at(s, offs[i - 1], &len))) --i;
      if (i == 0) break;
      if (static_cast<int64_t>(parts.size()) >= maxsplit) {
        parts.push_back(strip(s.substr(0, offs[i]), true, false));
        break;
      }
      const size_t end = i;
      while (i > 0 && !is_space(decode_at(s, offs[i - 1], &len))) --i;
      parts.emplace_back(s.substr(offs[i], offs[end] - offs[i]));
    }
  }
  return std::vector<std::string>(parts.rbegin(), parts.rend());
}

std::vector<std::string> splitlines(std::string_view s) {
  std::vector<std::string> lines;
  size_t start = 0;
  size_t pos = 0;
  size_t len = 0;
  while (pos < s.size()) {
    const char32_t c = decode_at(s, pos, &len);
    const bool brk = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
                     c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!brk) {
      pos += len;
      continue;
    }
    lines.emplace_back(s.substr(start, pos - start));
    pos += len;
    if (c == '\r' && pos < s.size() && s[pos] == '\n') ++pos;
    start = pos;
  }
  if (start < s.size()) lines.emplace_back(s.substr(start));
  return lines;
}

std::string replace(std::string_view s, std::string_view from, std::string_view to, int64_t count) {
  std::string out;
  if (from.empty()) {
    // Python inserts `to` before every character and at the end.
    const std::vector<size_t> offs = char_offsets(s);
    int64_t done = 0;
    for (size_t i = 0; i + 1 < offs.size(); ++i) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      out += s.substr(offs[i], offs[i + 1] - offs[i]);
    }
    if (count < 0 || done < count) out += to;
    return out;
  }
  size_t start = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    const size_t hit = s.find(from, start);
    if (hit == std::string_view::npos) break;
    out += s.substr(start, hit - start);
    out += to;
    start = hit + from.size();
    ++done;
  }
  out += s.substr(start);
  return out;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = to_upper(c);
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = to_lower(c);
  return out;
}

std::string capitalize(std::string_view s) {
  std::string out = lower(s);
  if (!out.empty()) out[0] = to_upper(out[0]);
  return out;
}

std::string py_title(std::string_view s) {
  std::string out(s);
  bool prev_cased = false;
  for (char& c : out) {
    if (is_ascii_alpha(c)) {
      c = prev_cased ? to_lower(c) : to_upper(c);
      prev_cased = true;
    } else {
      prev_cased = false;
    }
  }
  return out;
}

std::string jinja_title(std::string_view s) {
  std::string out;
  bool word_start = true;
  size_t len = 0;
  for (size_t pos = 0; pos < s.size(); pos += len) {
    const char32_t c = decode_at(s, pos, &len);
    const bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || is_space(c);
    if (sep) {
      out.append(s.substr(pos, len));
      word_start = true;
      continue;
    }
    if (len == 1) {
      out += word_start ? to_upper(s[pos]) : to_lower(s[pos]);
    } else {
      out.append(s.substr(pos, len));
    }
    word_start = false;
  }
  return out;
}

std::string repr(std::string_view s) {
  const bool has_single = s.find('\'') != std::string_view::npos;
  const bool has_double = s.find('"') != std::string_view::npos;
  const char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (ch == quote || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (ch == '\n') {
      out += "\\n";
    } else if (ch == '\r') {
      out += "\\r";
    } else if (ch == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  out += quote;
  return out;
}

void json_quote(std::string& out, std::string_view s, bool ensure_ascii) {
  out += '"';
  size_t len = 0;
  for (size_t pos = 0; pos < s.size(); pos += len) {
    const char32_t c = decode_at(s, pos, &len);
    char buf[16];
    switch (c) {
      case '"':
        out += "\\\"";
        continue;
      case '\\':
        out += "\\\\";
        continue;
      case '\n':
        out += "\\n";
        continue;
      case '\r':
        out += "\\r";
        continue;
      case '\t':
        out += "\\t";
        continue;
      case '\b':
        out += "\\b";
        continue;
      case '\f':
        out += "\\f";
        continue;
      default:
        break;
    }
    if (c < 0x20) {
      std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else if (c < 0x80 || !ensure_ascii) {
      out.append(s.substr(pos, len));
    } else if (c < 0x10000) {
      std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else {
      const char32_t v = c - 0x10000;
      std::snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", static_cast<unsigned>(0xD800 + (v >> 10)),
                    static_cast<unsigned>(0xDC00 + (v & 0x3FF)));
      out += buf;
    }
  }
  out += '"';
}

std::string float_repr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v == 0) return std::signbit(v) ? "-0.0" : "0.0";
  // Shortest round-trip digits, then Python's layout: scientific when the exponent is < -4 or >= 16.
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  const size_t e_pos = sci.find('e');
  std::string mant = sci.substr(0, e_pos);
  const int exp10 = std::atoi(sci.c_str() + e_pos + 1);
  std::string sign;
  if (mant[0] == '-') {
    sign = "-";
    mant.erase(0, 1);
  }
  std::string digits;
  for (const char c : mant) {
    if (c != '.') digits += c;
  }
  if (exp10 < -4 || exp10 >= 16) {
    std::string out = sign + digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char ebuf[16];
    std::snprintf(ebuf, sizeof(ebuf), "e%c%02d", exp10 < 0 ? '-' : '+', std::abs(exp10));
    return out + ebuf;
  }
  std::string out;
  if (exp10 < 0) {
    out = "0." + std::string(static_cast<size_t>(-exp10 - 1), '0') + digits;
  } else {
    const auto int_len = static_cast<size_t>(exp10) + 1;
    if (digits.size() <= int_len) {
      out = digits + std::string(int_len - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, int_len) + "." + digits.substr(int_len);
    }
  }
  return sign + out;
}

}  // namespace rf::chat::text
