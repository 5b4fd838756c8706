#include "common/traces.h"

#include <gtest/gtest.h>

#include <fstream>

#include "common/error.h"
#include "scratch_path.h"

namespace foresight {
namespace {

std::string write_jsonl(const std::string& text) {
  const std::string path = test_support::scratch_path("traces.jsonl");
  std::ofstream(path) << text;
  return path;
}

std::string error_of(const std::string& text) {
  try {
    read_traces(write_jsonl(text));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Traces, ReadsIdsTokensAndOptionalPromptLength) {
  const auto traces = read_traces(write_jsonl(
      "{\"id\": \"a\", \"input_ids\": [1, 2, 3], \"prompt_len\": 2}\n\n{\"id\": 7, \"input_ids\": [4]}\n"));
  ASSERT_EQ(traces.size(), 2u);
  EXPECT_EQ(traces[0].id, "a");
  EXPECT_EQ(traces[0].input_ids, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(traces[0].prompt_len, 2);
  EXPECT_EQ(traces[1].id, "7");
  EXPECT_FALSE(traces[1].prompt_len.has_value());
  EXPECT_EQ(trace_to_json(traces[0]), R"({"id":"a","input_ids":[1,2,3],"prompt_len":2})");
}

TEST(Traces, ErrorsNameTheLine) {
  EXPECT_NE(error_of("{\"id\": 1, \"input_ids\": [1]}\n{\"id\": 2, \"input_ids\": [1,\n").find(":2: not valid JSON"),
            std::string::npos);
  EXPECT_NE(error_of("{\"id\": 1, \"input_ids\": [1]}\n{\"id\": 1, \"input_ids\": [2]}\n").find(":2: trace id \"1\" repeats"),
            std::string::npos);
  EXPECT_NE(error_of("{\"id\": 1, \"input_ids\": [1.5]}\n").find(":1:"), std::string::npos);
  EXPECT_NE(error_of("{\"id\": 1, \"input_ids\": [1], \"prompt_len\": 5}\n").find("prompt_len"), std::string::npos);
  EXPECT_NE(error_of("{\"input_ids\": [1]}\n").find("\"id\""), std::string::npos);
}

}  // namespace
}  // namespace foresight
