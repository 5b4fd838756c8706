#include "common/config.h"

#include <gtest/gtest.h>

#include <fstream>

#include "common/error.h"
#include "common/sha256.h"
#include "scratch_path.h"

namespace foresight {
namespace {

std::string write_yaml(const std::string& text) {
  const std::string path = test_support::scratch_path("config.yaml");
  std::ofstream(path) << text;
  return path;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Config, OverridesReplaceAndAddNestedKeys) {
  const Config c = Config::load(write_yaml("budget: 64\nmodel: a\nexpect:\n  layers: 2\n"),
                                {"budget=128", "expect.layers=4", "expect.heads=8", "keep=true"});
  EXPECT_EQ(c.positive_int("budget"), 128);
  EXPECT_EQ(c.string("model"), "a");
  EXPECT_EQ(c.positive_int("expect.layers"), 4);
  EXPECT_EQ(c.positive_int("expect.heads"), 8);
  EXPECT_TRUE(c.boolean("keep", false));
  EXPECT_FALSE(c.boolean("absent", false));
  EXPECT_NE(c.yaml().find("128"), std::string::npos);
}

TEST(Config, ErrorsNameKeyValueAndExpectation) {
  const Config c = Config::load(write_yaml("budget: abc\nn: -3\nflag: maybe\nmode: x\nlist: [1]\n"), {});
  EXPECT_NE(error_of([&] { c.positive_int("budget"); }).find("key \"budget\" is \"abc\", expected a positive integer"),
            std::string::npos);
  EXPECT_NE(error_of([&] { c.positive_int("n"); }).find("is -3, expected a positive integer"), std::string::npos);
  EXPECT_NE(error_of([&] { c.boolean("flag", false); }).find("expected true or false"), std::string::npos);
  EXPECT_NE(error_of([&] { c.choice("mode", {"a", "b"}, "a"); }).find("expected one of: a, b"), std::string::npos);
  EXPECT_NE(error_of([&] { c.string("missing"); }).find("\"missing\" is missing"), std::string::npos);
  EXPECT_NE(error_of([&] { c.string("list"); }).find("single value"), std::string::npos);
  EXPECT_NE(error_of([&] { c.check_known_keys({"budget", "n", "flag", "mode"}); }).find("\"list\" is not a known key"),
            std::string::npos);
  EXPECT_EQ(error_of([&] { c.check_known_keys({"budget", "n", "flag", "mode", "list"}); }), "");
  EXPECT_NE(error_of([] { Config::load(write_yaml("a: b\n"), {"novalue"}); }).find("key=value"), std::string::npos);
}

TEST(Config, AnEmptyOverrideIsRefusedInsteadOfFallingBackToTheDefault) {
  const std::string path = write_yaml("lr: 0.1\n");
  EXPECT_NE(error_of([&] { Config::load(path, {"lr="}); }).find("override \"lr=\" has no value"), std::string::npos);
  EXPECT_NE(error_of([&] { Config::load(path, {"lr= "}); }).find("has no value"), std::string::npos);
  EXPECT_DOUBLE_EQ(Config::load(path, {"lr=0.2"}).positive_number("lr", 1.0), 0.2);
}

TEST(Config, AKeyThatAppearsTwiceIsRefused) {
  EXPECT_NE(error_of([] { Config::load(write_yaml("lr: 0.1\nbudget: 64\nlr: 0.2\n"), {}); })
                .find("key \"lr\" appears twice"),
            std::string::npos);
  EXPECT_NE(error_of([] { Config::load(write_yaml("reward:\n  threshold: 1\n  kind: spike\n  threshold: 2\n"), {}); })
                .find("key \"reward.threshold\" appears twice"),
            std::string::npos);
  EXPECT_NE(error_of([] { Config::parse("a: 1\na: 1\n", "run.json"); }).find("run.json: key \"a\" appears twice"),
            std::string::npos);
  // The same name under different parents is two keys.
  EXPECT_EQ(error_of([] { Config::load(write_yaml("a:\n  n: 1\nb:\n  n: 1\n"), {}); }), "");
}

TEST(Config, LeavesListEverySetKeyWithItsValueAsFlowYaml) {
  const auto leaves = Config::parse("lr: 0.5\nreward:\n  kind: spike\n  offset:\nbudgets: [32, \"64/8\"]\n", "x").leaves();
  const std::map<std::string, std::string> expected = {
      {"lr", "0.5"}, {"reward.kind", "spike"}, {"budgets", "[32, 64/8]"}};  // offset: null reads as unset
  EXPECT_EQ(leaves, expected);
}

TEST(Sha256, MatchesPublishedVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, FileHashEqualsTheHashOfItsBytes) {
  // Longer than the reader's 1 MiB buffer and not a multiple of 64, so pieces and padding both matter.
  std::string bytes;
  for (int i = 0; i < (1 << 20) + 1000; ++i) bytes.push_back(static_cast<char>((i * 7 + i / 251) & 0xff));
  const std::string path = test_support::scratch_path("sha256.bin");
  std::ofstream(path, std::ios::binary) << bytes;
  EXPECT_EQ(sha256_file_hex(path), sha256_hex(bytes));
  EXPECT_NE(error_of([] { sha256_file_hex("/nonexistent/golden.h5"); }).find("/nonexistent/golden.h5"),
            std::string::npos);
}

}  // namespace
}  // namespace foresight
