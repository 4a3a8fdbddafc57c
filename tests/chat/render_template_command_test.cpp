// The `render-template` subcommand: exact stdout, exit status and stderr on errors, templates from GGUF files.
#include "chat/render_template_command.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "support/shared_data.h"

namespace rf::chat {
namespace {

class RenderTemplateCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "rf_render_template_" + std::to_string(getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::remove(dir_.c_str());
  }
  std::string write(const std::string& name, const std::string& content) {
    const std::string path = dir_ + "_" + name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }
  // Runs the command, capturing stdout and stderr.
  int run(const RenderTemplateOptions& opts) {
    ::testing::internal::CaptureStdout();
    ::testing::internal::CaptureStderr();
    const int rc = run_render_template(opts);
    out_ = ::testing::internal::GetCapturedStdout();
    err_ = ::testing::internal::GetCapturedStderr();
    return rc;
  }
  std::string dir_, out_, err_;
};

TEST_F(RenderTemplateCommand, PrintsTheRenderedPromptExactlyWithoutANewline) {
  RenderTemplateOptions o;
  o.template_file = write("t.jinja",
                          "{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
                          "{% if add_generation_prompt %}[assistant]{% endif %}{{ eos_token }}\n");
  o.messages_file = write("m.json", R"([{"role":"user","content":"Hi é"}])");
  o.bos_token = "<s>";
  o.add_generation_prompt = true;
  ASSERT_EQ(run(o), 0) << err_;
  EXPECT_EQ(out_, "<s>[user] Hi é\n[assistant]");
  EXPECT_EQ(err_, "");
}

TEST_F(RenderTemplateCommand, MessagesObjectMayCarryTools) {
  RenderTemplateOptions o;
  o.template_file = write("t.jinja", "{{ tools | map(attribute='name') | join(',') }}|{{ messages | length }}");
  o.messages_file =
      write("m.json", R"({"messages":[{"role":"user","content":"x"}],"tools":[{"name":"a"},{"name":"b"}]})");
  ASSERT_EQ(run(o), 0) << err_;
  EXPECT_EQ(out_, "a,b|1");
}

TEST_F(RenderTemplateCommand, RaisingTemplateExitsOneWithItsMessageOnStderr) {
  RenderTemplateOptions o;
  o.template_file =
      write("t.jinja",
            "{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}ok");
  o.messages_file = write("m.json", R"([{"role":"system","content":"x"}])");
  EXPECT_EQ(run(o), 1);
  EXPECT_EQ(out_, "");
  EXPECT_NE(err_.find("System role not supported"), std::string::npos) << err_;
}

TEST_F(RenderTemplateCommand, MissingFilesAndBadJsonAreClearErrors) {
  RenderTemplateOptions o;
  o.template_file = write("t.jinja", "x");
  o.messages_file = dir_ + "_does_not_exist.json";
  EXPECT_EQ(run(o), 1);
  EXPECT_NE(err_.find("cannot open messages file"), std::string::npos) << err_;
  o.messages_file = write("m.json", "[{");
  EXPECT_EQ(run(o), 1);
  EXPECT_NE(err_.find("not valid JSON"), std::string::npos) << err_;
  RenderTemplateOptions none;
  none.messages_file = o.messages_file;
  EXPECT_EQ(run(none), 1);
  EXPECT_NE(err_.find("give a model"), std::string::npos) << err_;
}

TEST_F(RenderTemplateCommand, ModelWithoutChatTemplateIsAClearError) {
  RF_REQUIRE_SHARED(model, "models/stories260K.gguf");
  RenderTemplateOptions o;
  o.model = model;
  o.messages_file = write("m.json", R"([{"role":"user","content":"Hi"}])");
  EXPECT_EQ(run(o), 1);
  EXPECT_NE(err_.find("has no chat template"), std::string::npos) << err_;
  o.template_file = write("t.jinja", "{{ messages[0].content }}");  // a given template is used instead
  EXPECT_EQ(run(o), 0) << err_;
  EXPECT_EQ(out_, "Hi");
}

TEST_F(RenderTemplateCommand, UsesTheChatTemplateStoredInTheGguf) {
  RF_REQUIRE_SHARED(model, "tokenizer/ggml-vocab-qwen2.gguf");
  RenderTemplateOptions o;
  o.model = model;
  o.messages_file = write("m.json", R"([{"role":"user","content":"Hi"}])");
  o.add_generation_prompt = true;
  ASSERT_EQ(run(o), 0) << err_;
  EXPECT_NE(out_.find("<|im_start|>user\nHi<|im_end|>\n"), std::string::npos) << out_;
  EXPECT_EQ(out_.substr(out_.size() - 22), "<|im_start|>assistant\n") << out_;
}

}  // namespace
}  // namespace rf::chat
