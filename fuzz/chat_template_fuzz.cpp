// libFuzzer target: parses arbitrary bytes as a chat template and renders it against a fixed conversation with
// small RenderOptions limits. Errors are fine; crashes, hangs, uncaught exceptions and runaway memory are not.
// Checks: errors carry a "chat template: ..." message; a render never exceeds max_output_bytes; rendering is
// deterministic (the same parsed template renders the same text or error twice, and a fresh parse agrees).
// First input byte: flags of fuzz_chat() (chat_template_fuzz.h); the rest is the template source.
#include "chat_template_fuzz.h"

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_support.h"

namespace {

using rf::fuzz::check;

bool is_template_error(const std::string& message) { return message.rfind("chat template", 0) == 0; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const rf::chat::ChatRequest request = rf::fuzz::fuzz_chat(data[0]);
  const std::string_view source(reinterpret_cast<const char*>(data + 1), size - 1);
  const rf::chat::RenderOptions opts = rf::fuzz::fuzz_render_options();

  auto parsed = rf::chat::ChatTemplate::parse(source);
  if (!parsed.ok()) {
    check(is_template_error(parsed.error_message()));
    return 0;
  }
  auto first = parsed->render_chat(request, opts);
  if (first.ok()) {
    check(first->size() <= opts.max_output_bytes);
  } else {
    check(is_template_error(first.error_message()));
  }
  auto second = parsed->render_chat(request, opts);
  check(second.ok() == first.ok());
  check(first.ok() ? *second == *first : second.error_message() == first.error_message());
  auto fresh = rf::chat::render_chat(source, request, opts);
  check(fresh.ok() == first.ok());
  check(first.ok() ? *fresh == *first : fresh.error_message() == first.error_message());
  return 0;
}
