// Turns one choice's token events into what the client sees: UTF-8-safe text (StreamDecoder), stop strings cut
// across token boundaries and never emitted (StopMatcher), and logprob entries released together with the text
// they belong to (a token whose text lies entirely after a stop string is dropped).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/engine.h"
#include "server/response.h"
#include "server/stop_matcher.h"
#include "tokenizer/tokenizer.h"

namespace rf::server {

class ChoiceAssembler {
 public:
  ChoiceAssembler(std::shared_ptr<const tokenizer::Tokenizer> tok, std::vector<std::string> stops, bool logprobs);

  struct Delta {
    std::string text;
    std::vector<TokenLogprob> logprobs;
    std::vector<size_t> text_offsets;  // byte offset of each logprob token in the choice text
    bool stopped = false;              // a stop string ended the choice: cancel its sequence
    bool empty() const { return text.empty() && logprobs.empty(); }
  };
  Delta add(const runtime::TokenEvent& ev);
  // The generation ended without a stop string: releases held text and logprobs.
  Delta finish();

  bool stopped() const { return matcher_.stopped(); }
  const std::string& text() const { return text_; }  // everything released so far
  int64_t n_tokens() const { return n_tokens_; }

 private:
  struct Pending {
    size_t start = 0, end = 0;  // bytes of the decoded text this token completed
    TokenLogprob lp;
  };
  void release(Delta& d, size_t emitted_limit, bool partial_ok);

  std::shared_ptr<const tokenizer::Tokenizer> tok_;
  tokenizer::StreamDecoder decoder_;
  StopMatcher matcher_;
  bool logprobs_;
  std::vector<Pending> pending_;
  size_t decoded_ = 0;
  std::string text_;
  int64_t n_tokens_ = 0;
};

}  // namespace rf::server
