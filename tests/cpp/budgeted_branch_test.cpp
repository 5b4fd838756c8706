#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>

#include "cache/budgeted_decoder.h"
#include "cache/budgeted_runner.h"
#include "model/token_metrics.h"
#include "model/transformer.h"
#include "error_text.h"
#include "tiny_model.h"

namespace foresight {
namespace {

using test_support::error_text;
using test_support::random_ids;
using test_support::tiny_model;

// Valid drops that differ per sequence: W distinct slots of B per layer, step and KV head.
at::Tensor random_drops(int64_t layers, int64_t steps, int64_t kv, const EvictionSchedule& s, int64_t seed) {
  at::manual_seed(seed);
  at::Tensor out = at::empty({layers, steps, kv, s.interval}, at::kInt);
  for (int64_t l = 0; l < layers; ++l) {
    for (int64_t t = 0; t < steps; ++t) {
      for (int64_t h = 0; h < kv; ++h) out[l][t][h].copy_(at::randperm(s.budget, at::kLong).slice(0, 0, s.interval));
    }
  }
  return out;
}

// A batch of one branched after the shared first B + W tokens into three sequences, each with
// its own drops, runs each sequence as the runner does alone: same drops, same NLL.
TEST(BudgetedDecoderBranch, EachBranchRunsAsItsSequenceAlone) {
  const Transformer model = tiny_model("branch", 4, 2);
  const auto ids = random_ids(75, 9);  // B 16, W 8: 7 eviction steps, a partial last chunk
  const EvictionSchedule schedule{16, 8};
  const int64_t steps = schedule.steps(75), shared = 24;
  std::vector<ForcedDrops> forced;
  for (int64_t n = 0; n < 3; ++n) forced.emplace_back(random_drops(2, steps, 2, schedule, 20 + n));
  const at::Tensor tokens = at::tensor(ids, at::kLong);

  BudgetedDecoder decoder(model, schedule, {&forced[0]});
  const at::Tensor head = decoder.feed(tokens.slice(0, 0, shared).unsqueeze(0));  // [1, 24, hidden]
  decoder.branch({&forced[0], &forced[1], &forced[2]});
  const at::Tensor tail = decoder.feed(tokens.slice(0, shared).unsqueeze(0).expand({3, -1}).contiguous());
  const at::Tensor slots = decoder.drop_slots(), positions = decoder.drop_positions();
  ASSERT_EQ(slots.size(0), 3);
  for (int64_t n = 0; n < 3; ++n) {
    const BudgetedRun alone = run_budgeted(model, ids, schedule, forced[static_cast<std::size_t>(n)]);
    EXPECT_TRUE(at::equal(slots[n], alone.drop_slots)) << n;
    EXPECT_TRUE(at::equal(positions[n], alone.drop_positions)) << n;
    const at::Tensor nll = token_metrics(model, at::cat({head[0], tail[n]}), tokens).nll;
    EXPECT_LT((nll - alone.nll).abs().max().item<double>(), 1e-5) << n;
  }
  // The sequences really went apart: different drops keep different tokens.
  EXPECT_FALSE(at::equal(positions[0], positions[1]));
}

TEST(BudgetedDecoderBranch, RefusedAfterAnEvictionStepOrFromABatch) {
  const Transformer model = tiny_model("branch_refused", 4, 2);
  const auto ids = random_ids(40, 9);
  const EvictionSchedule schedule{16, 8};
  ForcedDrops a(random_drops(2, 2, 2, schedule, 1)), b(random_drops(2, 2, 2, schedule, 2));
  const at::Tensor tokens = at::tensor(ids, at::kLong).unsqueeze(0);
  BudgetedDecoder late(model, schedule, {&a});
  late.feed(tokens.slice(1, 0, 25));  // the 25th token follows the first eviction step
  EXPECT_NE(error_text([&] { late.branch({&a, &b}); }).find("after an eviction step"), std::string::npos);
  BudgetedDecoder pair(model, schedule, {&a, &b});
  EXPECT_NE(error_text([&] { pair.branch({&a, &b}); }).find("only a batch of one"), std::string::npos);
}

}  // namespace
}  // namespace foresight
