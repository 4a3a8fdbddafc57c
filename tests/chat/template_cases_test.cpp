// Every case of shared/chat-templates/chat_template_cases.json: the reference Jinja2 render, byte for byte,
// or an error where the reference raised.
#include <gtest/gtest.h>

#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "chat/chat_template.h"
#include "support/shared_data.h"

namespace rf::chat {
namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The reference renders fixed strftime_now() to 2026-01-15.
RenderOptions reference_options() {
  RenderOptions opts;
  std::tm tm{};
  tm.tm_year = 2026 - 1900;
  tm.tm_mon = 0;
  tm.tm_mday = 15;
  tm.tm_wday = 4;  // a Thursday
  tm.tm_yday = 14;
  opts.now = tm;
  return opts;
}

TEST(ChatTemplateCases, EveryReferenceCaseRendersExactlyOrErrorsLikeTheReference) {
  RF_REQUIRE_SHARED(cases_path, "chat-templates/chat_template_cases.json");
  const auto cases = nlohmann::ordered_json::parse(read_text(cases_path));
  ASSERT_TRUE(cases.is_array());
  ASSERT_GT(cases.size(), 0u);
  const std::string dir = cases_path.substr(0, cases_path.rfind('/') + 1);
  int n_render = 0;
  int n_error = 0;
  for (const auto& c : cases) {
    const std::string name = c["template"].get<std::string>();
    const std::string label = name + " / " + c["conversation"].get<std::string>() +
                              (c["add_generation_prompt"].get<bool>() ? " / gen" : " / no-gen");
    const std::string source = read_text(dir + name);
    ASSERT_FALSE(source.empty()) << label;
    ChatRequest req;
    req.messages = c["messages"];
    req.add_generation_prompt = c["add_generation_prompt"].get<bool>();
    req.bos_token = c["bos_token"].get<std::string>();
    req.eos_token = c["eos_token"].get<std::string>();
    const auto out = render_chat(source, req, reference_options());
    if (c.contains("expected_error")) {
      ++n_error;
      if (out.ok()) {
        ADD_FAILURE() << label << " rendered instead of raising: " << *out;
        continue;
      }
      EXPECT_NE(out.error_message().find(c["expected_error"].get<std::string>()), std::string::npos)
          << label << ": " << out.error_message();
    } else {
      ++n_render;
      if (!out.ok()) {
        ADD_FAILURE() << label << ": " << out.error_message();
        continue;
      }
      EXPECT_EQ(*out, c["expected"].get<std::string>()) << label;
    }
  }
  EXPECT_EQ(n_render + n_error, static_cast<int>(cases.size()));
}

}  // namespace
}  // namespace rf::chat
