// Pre-tokenization: splits text into words with a chain of regular expressions, each applied to the pieces the
// previous one produced (text between matches stays a piece of its own).
//
// The split reproduces the reference engine (llama.cpp) exactly, including where it differs from a Unicode-aware
// regex engine: a pattern that uses \p{..} classes is matched against a "collapsed" text in which every non-ASCII
// code point stands for its category (\p{Lu}, \p{Ll}, ... all mean "any letter"; non-ASCII white space counts as
// \s), and the two most common patterns (GPT-2's and LLaMA 3's) run as hand-written scanners whose behaviour the
// reference defines. Matching is done by PCRE2 (32-bit code units, no UTF mode) over those code points.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace rf::tokenizer {

class PreTokenizer {
 public:
  // `patterns` are applied in order. Errors name the pattern that failed to compile.
  static Expected<PreTokenizer> create(const std::vector<std::string>& patterns);

  // Splits `text` into words (UTF-8; invalid input bytes come out as U+FFFD). Concatenating the words gives the
  // text back (up to that replacement).
  std::vector<std::string> split(std::string_view text) const;

  // Word boundaries as code point counts, for `cps` (the decoded text). Exposed for tests.
  std::vector<size_t> split_lengths(const std::vector<uint32_t>& cps) const;

  struct Step;

 private:
  std::vector<std::shared_ptr<const Step>> steps_;
};

}  // namespace rf::tokenizer
