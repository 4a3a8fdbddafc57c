#include "server/choice_assembler.h"

namespace rf::server {

ChoiceAssembler::ChoiceAssembler(std::shared_ptr<const tokenizer::Tokenizer> tok, std::vector<std::string> stops,
                                 bool logprobs)
    : tok_(tok), decoder_(std::move(tok)), matcher_(std::move(stops)), logprobs_(logprobs) {}

void ChoiceAssembler::release(Delta& d, size_t limit, bool partial_ok) {
  size_t i = 0;
  for (; i < pending_.size(); ++i) {
    const Pending& p = pending_[i];
    const bool ok = partial_ok ? p.start < limit || (p.start == p.end && p.end <= limit) : p.end <= limit;
    if (!ok) break;
    d.logprobs.push_back(p.lp);
    d.text_offsets.push_back(p.start);
  }
  pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(i));
}

ChoiceAssembler::Delta ChoiceAssembler::add(const runtime::TokenEvent& ev) {
  Delta d;
  if (matcher_.stopped()) return d;
  ++n_tokens_;
  const std::string piece = decoder_.push(ev.token);
  if (logprobs_) {
    Pending p;
    p.start = decoded_;
    p.end = decoded_ + piece.size();
    p.lp.token = tok_->token_to_piece(ev.token);
    p.lp.logprob = ev.logprob;
    for (const auto& [id, lp] : ev.top) p.lp.top.push_back({tok_->token_to_piece(id), lp});
    pending_.push_back(std::move(p));
  }
  decoded_ += piece.size();
  auto out = matcher_.push(piece);
  d.text = std::move(out.text);
  text_ += d.text;
  if (out.stopped) {
    d.stopped = true;
    release(d, matcher_.emitted_bytes(), /*partial_ok=*/true);
    pending_.clear();
  } else {
    release(d, matcher_.emitted_bytes(), /*partial_ok=*/false);
  }
  return d;
}

ChoiceAssembler::Delta ChoiceAssembler::finish() {
  Delta d;
  if (matcher_.stopped()) return d;
  auto out = matcher_.push(decoder_.flush());
  d.text = std::move(out.text);
  if (out.stopped) {
    d.stopped = true;
    release(d, matcher_.emitted_bytes(), true);
    pending_.clear();
  } else {
    d.text += matcher_.flush();
    release(d, matcher_.emitted_bytes(), true);
  }
  text_ += d.text;
  return d;
}

}  // namespace rf::server
