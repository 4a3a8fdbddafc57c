// Writes the seed corpus of server_request_fuzz into a folder: an endpoint byte (0 chat, 1 completions) followed by
// a request body: typical valid requests with every field, and a few near misses.
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace {

bool save(const std::string& dir, size_t index, uint8_t endpoint, const std::string& body) {
  const std::string path = dir + "/seed_" + std::to_string(index);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  bool ok = std::fputc(endpoint, f) != EOF && std::fwrite(body.data(), 1, body.size(), f) == body.size();
  return std::fclose(f) == 0 && ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const std::vector<std::pair<uint8_t, std::string>> seeds = {
      {0, R"({"model": "m", "messages": [{"role": "user", "content": "Hi"}]})"},
      {0, R"({"model": "m", "messages": [{"role": "system", "content": "Be brief."},
          {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
          {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "f", "arguments": "{}"}}]},
          {"role": "tool", "content": "42", "tool_call_id": "c1"}],
        "max_tokens": 16, "max_completion_tokens": 8, "temperature": 0.7, "top_p": 0.9, "top_k": 40,
        "min_p": 0.05, "presence_penalty": 0.5, "frequency_penalty": -0.5, "repetition_penalty": 1.1,
        "seed": -1, "stop": ["\n\n", "END"], "n": 2, "logprobs": true, "top_logprobs": 5,
        "stream": true, "stream_options": {"include_usage": true}, "user": "u"})"},
      {0, R"({"messages": [{"role": "wizard", "content": "x"}], "temperature": 3})"},
      {0, R"({"messages": [], "top_logprobs": 2})"},
      {0, R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}], "n": 0})"},
      {1, R"({"model": "m", "prompt": "Once upon a time", "max_tokens": 32, "logprobs": 3, "echo": false,
        "stop": "\n", "seed": 18446744073709551615, "temperature": 0})"},
      {1, R"({"prompt": [1, 2, 3.0, 4], "max_tokens": 1.0, "top_k": -1, "stream": false})"},
      {1, R"({"prompt": [[5, 6, 7]], "logprobs": true, "n": 128})"},
      {1, R"({"prompt": ["one", "two"], "stop": [""], "top_p": 0})"},
      {1, R"({"prompt": [-1], "stream_options": {"include_usage": true}})"},
      {1,
       R"([[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]])"},
      {0, R"({"messages": [{"role": "user", "content": "\ud83e\udd99 \u00e9"}], "temperature": 1e400})"},
  };
  bool ok = true;
  for (size_t i = 0; i < seeds.size(); ++i) ok = ok && save(argv[1], i, seeds[i].first, seeds[i].second);
  return ok ? 0 : 1;
}
