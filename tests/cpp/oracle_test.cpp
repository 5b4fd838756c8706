#include "golden/oracle.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "common/error.h"

namespace foresight {
namespace {

struct NaiveStep {
  std::vector<int> slots, positions;
  std::vector<float> scores;
};

// DESIGN.md §3's replay for one KV head, as plainly as it reads: a list of cached positions,
// future = max over the blocks after the chunk, drop the W smallest (ties: lower slot) of the
// entries whose position is not protected, compact.
std::vector<NaiveStep> naive_oracle(const at::Tensor& blocks, int64_t kv, int64_t budget, int64_t w, int64_t protect) {
  const auto a = blocks.accessor<float, 3>();
  const int64_t len = blocks.size(1), n_blocks = blocks.size(2);
  std::vector<int> cache(static_cast<std::size_t>(budget));
  std::iota(cache.begin(), cache.end(), 0);
  std::vector<NaiveStep> steps;
  for (int64_t s = 0; budget + (s + 1) * w < len; ++s) {
    const int64_t first_future = budget / w + 1 + s;
    NaiveStep step;
    std::vector<std::pair<float, int>> ranked;
    for (int slot = 0; slot < budget; ++slot) {
      float future = -1;
      for (int64_t b = first_future; b < n_blocks; ++b) future = std::max(future, a[kv][cache[slot]][b]);
      step.scores.push_back(-future);
      if (cache[slot] >= protect) ranked.emplace_back(future, slot);
    }
    std::sort(ranked.begin(), ranked.end());
    for (int64_t i = 0; i < w; ++i) step.slots.push_back(ranked[i].second);
    std::sort(step.slots.begin(), step.slots.end());
    std::vector<int> next;
    for (int slot = 0; slot < budget; ++slot) {
      if (!std::binary_search(step.slots.begin(), step.slots.end(), slot)) next.push_back(cache[slot]);
      else step.positions.push_back(cache[slot]);
    }
    for (int64_t p = budget + s * w; p < budget + (s + 1) * w; ++p) next.push_back(static_cast<int>(p));
    cache = next;
    steps.push_back(step);
  }
  return steps;
}

std::vector<int> row(const at::Tensor& t) { return std::vector<int>(t.data_ptr<int>(), t.data_ptr<int>() + t.numel()); }

struct Case {
  int64_t budget, interval, len, kv_heads;
  bool ties;
  int64_t protect = 0;
};

class OracleTest : public ::testing::TestWithParam<Case> {};

TEST_P(OracleTest, ReproducesTheDirectReplay) {
  const Case c = GetParam();
  at::manual_seed(c.len);
  const int64_t n_blocks = (c.len + c.interval - 1) / c.interval;
  at::Tensor blocks = at::rand({c.kv_heads, c.len, n_blocks});
  if (c.ties) blocks = (blocks * 4).floor() / 4;  // four levels: many exact ties
  const EvictionSchedule schedule{c.budget, c.interval, c.protect};
  const OracleDrops got = golden_eviction(blocks, schedule);
  const int64_t steps = schedule.steps(c.len);
  ASSERT_EQ(got.drop_slots.sizes(), (std::vector<int64_t>{steps, c.kv_heads, c.interval}));
  ASSERT_EQ(got.scores.sizes(), (std::vector<int64_t>{steps, c.kv_heads, c.budget}));
  for (int64_t kv = 0; kv < c.kv_heads; ++kv) {
    const auto want = naive_oracle(blocks, kv, c.budget, c.interval, c.protect);
    ASSERT_EQ(static_cast<int64_t>(want.size()), steps);
    for (int64_t s = 0; s < steps; ++s) {
      EXPECT_EQ(row(got.drop_slots[s][kv].contiguous()), want[s].slots) << "step " << s;
      EXPECT_EQ(row(got.drop_positions[s][kv].contiguous()), want[s].positions) << "step " << s;
      EXPECT_GE(got.drop_positions[s][kv].min().item<int>(), c.protect) << "step " << s;
      const at::Tensor scores = got.scores[s][kv].contiguous();
      EXPECT_EQ(std::vector<float>(scores.data_ptr<float>(), scores.data_ptr<float>() + c.budget), want[s].scores);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Schedules, OracleTest,
    ::testing::Values(Case{8, 4, 13, 2, false},   // smallest L with one step (B + W + 1)
                      Case{8, 4, 12, 1, false},   // B + W: no step
                      Case{8, 4, 45, 2, false},   // B/W = 2, L not a multiple of W
                      Case{16, 4, 70, 3, false},  // B/W = 4
                      Case{16, 4, 67, 2, true},   // ties everywhere
                      Case{8, 2, 40, 2, true},
                      // Protected first positions: never dropped, even where their future is the least.
                      Case{16, 4, 70, 3, false, 5},
                      Case{16, 4, 67, 2, true, 12},  // B - W: exactly W candidates each step
                      Case{8, 2, 40, 2, true, 1}),
    [](const auto& info) {
      const Case& c = info.param;
      return "B" + std::to_string(c.budget) + "_W" + std::to_string(c.interval) + "_L" +
             std::to_string(c.len) + (c.ties ? "_ties" : "") + (c.protect ? "_P" + std::to_string(c.protect) : "");
    });

// The protected entries are the ones with the least future attention: without protect the
// oracle drops exactly them, with it never.
TEST(Oracle, NeverDropsAProtectedEntryThatItWouldOtherwiseDropFirst) {
  at::Tensor blocks = at::full({1, 30, 15}, 0.5f);  // L 30, W 2: 15 blocks
  blocks.slice(1, 0, 2).fill_(0.0f);  // positions 0 and 1: no future at all
  EXPECT_EQ(row(golden_eviction(blocks, {8, 2}).drop_positions[0][0].contiguous()), (std::vector<int>{0, 1}));
  EXPECT_EQ(row(golden_eviction(blocks, {8, 2, 2}).drop_positions[0][0].contiguous()), (std::vector<int>{2, 3}));
}

TEST(EvictionSchedule, StepsAndValidation) {
  const EvictionSchedule s{8, 4};
  EXPECT_EQ(s.steps(12), 0);
  EXPECT_EQ(s.steps(13), 1);
  EXPECT_EQ(s.steps(16), 1);
  EXPECT_EQ(s.steps(17), 2);
  EXPECT_EQ(s.steps(3), 0);
  EXPECT_NO_THROW(s.validate());
  EXPECT_THROW((EvictionSchedule{8, 3}.validate()), Error);
  EXPECT_THROW((EvictionSchedule{8, 8}.validate()), Error);
  EXPECT_THROW((EvictionSchedule{4, 8}.validate()), Error);
}

}  // namespace
}  // namespace foresight
