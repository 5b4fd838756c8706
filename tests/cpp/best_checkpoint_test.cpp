#include "train/best_checkpoint.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/error.h"
#include "policy/scorer.h"
#include "scratch_path.h"

namespace foresight {
namespace {

namespace fs = std::filesystem;
using test_support::scratch_path;

ScorerSpec small_spec() {
  ScorerSpec spec;
  spec.base_model = {"qwen3", 2, 4, 2, 8, "cfg", "weights"};
  spec.group = 2;
  spec.schedule = {16, 8};
  return spec;
}

std::string provenance(int64_t step, double accuracy) {
  return nlohmann::json{{"stage", "test"}, {"step", step}, {"validation", {{"accuracy", accuracy}}}}.dump();
}

bool same_weights(const LearnedScorer& a, const LearnedScorer& b) {
  const auto pa = a.parameters(), pb = b.parameters();
  for (std::size_t i = 0; i < pa.size(); ++i) {
    if (!at::equal(pa[i], pb[i])) return false;
  }
  return true;
}

// A run validated at steps 0, 10, ..., 50 whose accuracy peaks at step 30 and falls after: final/
// is step 30's scorer, not the last one, also when the run is resumed (a fresh BestCheckpoint over
// the same directory) after the peak. A tie later (step 50) keeps the earlier scorer.
TEST(BestCheckpoint, FinalIsTheScorerOfTheValidationPeakNotTheLast) {
  const fs::path out = scratch_path("run");
  fs::remove_all(out);
  fs::create_directories(out);
  const ScorerSpec spec = small_spec();
  const std::vector<double> accuracy = {0.25, 0.5, 0.625, 0.875, 0.375, 0.875};
  std::vector<LearnedScorer> scorers;
  for (std::size_t i = 0; i < accuracy.size(); ++i) scorers.emplace_back(spec, 100 + i);

  BestCheckpoint first(out, true);
  EXPECT_FALSE(first.restore());
  for (std::size_t i = 0; i < 4; ++i) {
    const auto step = static_cast<int64_t>(10 * i);
    EXPECT_TRUE(first.offer(step, accuracy[i], scorers[i], provenance(step, accuracy[i]))) << step;
  }
  BestCheckpoint resumed(out, true);
  ASSERT_TRUE(resumed.restore());
  EXPECT_EQ(resumed.step(), 30);
  EXPECT_EQ(resumed.accuracy(), 0.875);
  EXPECT_FALSE(resumed.offer(40, accuracy[4], scorers[4], provenance(40, accuracy[4])));
  EXPECT_FALSE(resumed.offer(50, accuracy[5], scorers[5], provenance(50, accuracy[5])));
  resumed.write_final(spec);

  const LearnedScorer final_scorer = LearnedScorer::load((out / "final").string(), spec);
  EXPECT_TRUE(same_weights(final_scorer, scorers[3]));
  EXPECT_FALSE(same_weights(final_scorer, scorers[5]));
  const auto p = nlohmann::json::parse(LearnedScorer::read_provenance((out / "final").string()));
  EXPECT_EQ(p.at("step"), 30);
  EXPECT_EQ(p.at("validation").at("accuracy"), 0.875);
  fs::remove_all(out);
}

// A rank that does not write tracks the same numbers and leaves the directory alone.
TEST(BestCheckpoint, OnlyTheWriterSaves) {
  const fs::path out = scratch_path("ranks");
  fs::remove_all(out);
  fs::create_directories(out);
  const LearnedScorer scorer(small_spec(), 1);
  BestCheckpoint other(out, false);
  EXPECT_TRUE(other.offer(0, 0.5, scorer, provenance(0, 0.5)));
  EXPECT_EQ(other.step(), 0);
  EXPECT_FALSE(fs::exists(out / "best"));
  EXPECT_THROW(BestCheckpoint(out, true).write_final(small_spec()), Error);
  fs::remove_all(out);
}

}  // namespace
}  // namespace foresight
