// Kernel 3 (select_compact): on the CPU greedy selection is checked against a plain sort and the
// compaction against the previous gather; the CUDA kernels equal the CPU references (index sets and moved bytes exactly, sampled
// drops by frequency). The GPU cases skip without a GPU.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <numeric>
#include <set>
#include <tuple>
#include <vector>

#include "cache/layer_cache.h"
#include "kernel_test_support.h"
#include "kernels/drop_selection.h"
#include "kernels/select_compact_op.h"
#include "policy/features.h"

#ifdef FORESIGHT_WITH_CUDA
#include "kernels/select_compact.cuh"
#endif

namespace foresight {
namespace {

// The cache of `rows` rows of `entries` entries, random, in `dtype` (cum and cum_decay float32).
CacheEntries random_entries(int64_t rows, int64_t entries, int64_t dim, int64_t group, at::ScalarType dtype,
                            at::Device device = at::kCPU) {
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(device);
  return {at::randn({rows, entries, dim}, f32).to(dtype), at::randn({rows, entries, dim}, f32).to(dtype),
          at::rand({rows, entries, group}, f32), at::rand({rows, entries, group}, f32),
          at::randperm(rows * entries, at::TensorOptions().dtype(at::kLong).device(device)).view({rows, entries})};
}

CacheEntries clone(const CacheEntries& e) {
  return {e.keys.clone(), e.values.clone(), e.cum.clone(), e.cum_decay.clone(), e.positions.clone()};
}

CacheEntries to_cpu(const CacheEntries& e) {
  return {e.keys.cpu(), e.values.cpu(), e.cum.cpu(), e.cum_decay.cpu(), e.positions.cpu()};
}

// `w` distinct slots below `budget` per row, in random order: the op must not rely on sorted input.
at::Tensor random_slots(int64_t rows, int64_t budget, int64_t w) {
  std::vector<at::Tensor> per_row;
  for (int64_t r = 0; r < rows; ++r) per_row.push_back(at::randperm(budget, at::kLong).slice(0, 0, w));
  return at::stack(per_row);
}

bool equal(const CacheEntries& a, const CacheEntries& b) {
  return at::equal(a.keys, b.keys) && at::equal(a.values, b.values) && at::equal(a.cum, b.cum) &&
         at::equal(a.cum_decay, b.cum_decay) && at::equal(a.positions, b.positions);
}

// LayerCache::evict as it was before the kernel: new tensors of the S - W survivors.
CacheEntries previous_evict(const CacheEntries& e, const at::Tensor& slots, int64_t budget) {
  const int64_t kv = e.keys.size(0), s = e.keys.size(1), w = slots.size(1);
  at::Tensor keep = at::ones({kv, s}, at::TensorOptions().dtype(at::kBool).device(e.keys.device()));
  keep.slice(1, 0, budget).scatter_(1, slots, false);
  const at::Tensor index = at::arange(s, e.positions.options()).expand({kv, s}).masked_select(keep).view({kv, s - w});
  auto take = [&](const at::Tensor& x) { return x.gather(1, index.unsqueeze(-1).expand({kv, s - w, x.size(2)})); };
  return {take(e.keys), take(e.values), take(e.cum), take(e.cum_decay), e.positions.gather(1, index)};
}

CacheEntries first(const CacheEntries& e, int64_t n) {
  return {e.keys.narrow(1, 0, n), e.values.narrow(1, 0, n), e.cum.narrow(1, 0, n), e.cum_decay.narrow(1, 0, n),
          e.positions.narrow(1, 0, n)};
}

// --- CPU: the op is the previous behaviour --------------------------------------------------------

// The W highest of a row by a plain stable sort: NaN above everything, -0 equal to +0, ties to
// the lower slot; ascending slots.
std::vector<int64_t> naive_top_w(const at::Tensor& row, int64_t w) {
  std::vector<float> x;
  for (int64_t j = 0; j < row.size(0); ++j) x.push_back(row[j].item<float>());
  std::vector<int64_t> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    if (std::isnan(x[a]) || std::isnan(x[b])) return std::isnan(x[a]) && !std::isnan(x[b]);
    return x[a] > x[b];
  });
  order.resize(static_cast<std::size_t>(w));
  std::sort(order.begin(), order.end());
  return order;
}

TEST(SelectCompactCpu, GreedySelectionIsTheWHighestTiesToTheLowerSlot) {
  at::manual_seed(1);
  // Integer scores make many ties; -0/+0, infinities and NaN exercise the order's corners.
  at::Tensor scores = at::randint(-3, 4, {6, 40}).to(at::kFloat);
  scores[0][3] = -0.0f;
  scores[0][5] = 0.0f;
  scores[1][7] = INFINITY;
  scores[2][9] = -INFINITY;
  scores[3][11] = NAN;
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    for (const int64_t w : {1, 10, 20, 40}) {
      const at::Tensor got = select_drops(scores.to(dtype), w, std::nullopt);
      for (int64_t r = 0; r < scores.size(0); ++r) {
        const at::Tensor row = got[r];
        EXPECT_EQ(std::vector<int64_t>(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + w), naive_top_w(scores[r], w))
            << dtype << " w " << w << " row " << r;
      }
    }
  }
}

TEST(SelectCompactCpu, CompactionIsThePreviousGatherInPlace) {
  at::manual_seed(2);
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
    for (const auto& [budget, w] : {std::pair<int64_t, int64_t>{16, 8}, {16, 4}, {40, 10}}) {
      const CacheEntries before = random_entries(6, budget + w, 5, 3, dtype);
      const at::Tensor slots = random_slots(6, budget, w);
      const CacheEntries after = clone(before);
      compact_entries(after, slots, budget);
      EXPECT_TRUE(equal(first(after, budget), previous_evict(before, slots, budget))) << dtype << " B/W " << budget << "/" << w;
      // The last W entries keep their old contents.
      const CacheEntries tail{after.keys.narrow(1, budget, w), after.values.narrow(1, budget, w),
                              after.cum.narrow(1, budget, w), after.cum_decay.narrow(1, budget, w),
                              after.positions.narrow(1, budget, w)};
      const CacheEntries old_tail{before.keys.narrow(1, budget, w), before.values.narrow(1, budget, w),
                                  before.cum.narrow(1, budget, w), before.cum_decay.narrow(1, budget, w),
                                  before.positions.narrow(1, budget, w)};
      EXPECT_TRUE(equal(tail, old_tail));
    }
  }
  // Layouts LayerCache produces: cum transposed (its first chunk), and narrowed rows (after an evict).
  const CacheEntries base = random_entries(4, 30, 8, 2, at::kFloat);
  CacheEntries odd = clone(base);
  odd.cum = base.cum.transpose(1, 2).contiguous().transpose(1, 2);
  const at::Tensor wide = at::randn({4, 36, 8});
  odd.keys = wide.narrow(1, 0, 30);
  odd.keys.copy_(base.keys);
  const at::Tensor slots = random_slots(4, 24, 6);
  compact_entries(odd, slots, 24);
  EXPECT_TRUE(equal(first(odd, 24), previous_evict(base, slots, 24)));
}

TEST(SelectCompactCpu, SelectCompactIsSelectionThenCompaction) {
  at::manual_seed(3);
  const at::Tensor scores = at::randn({6, 32});
  for (const std::optional<uint64_t> seed : {std::optional<uint64_t>(), std::optional<uint64_t>(5)}) {
    const CacheEntries before = random_entries(6, 40, 4, 2, at::kBFloat16);
    const CacheEntries after = clone(before);
    const at::Tensor slots = select_compact(scores, 8, seed, after);
    EXPECT_TRUE(at::equal(slots, select_drops(scores, 8, seed)));
    EXPECT_TRUE(equal(first(after, 32), previous_evict(before, slots, 32)));
  }
}

// LayerCache::evict (now through the op) against the previous gather on the cache's own state,
// read back through the features of every entry.
TEST(SelectCompactCpu, LayerCacheEvictIsUnchanged) {
  at::manual_seed(4);
  const int64_t heads = 4, kv = 2, g = heads / kv, d = 8, budget = 24, w = 8;
  LayerCache cache;
  auto append = [&](int64_t start, int64_t t) {
    cache.begin_chunk(t, /*keep_rows=*/true);
    cache.append({at::randn({t, heads, d}), at::randn({t, kv, d}), at::randn({t, kv, d})}, start);
  };
  // Keys, values, cum, cum_decay and positions of all entries.
  auto state = [&]() {
    const at::Tensor f = candidate_features(cache.candidates(cache.size()), FeatureSet::Recency);
    return CacheEntries{feature_keys(f, g), f.slice(-1, d, 2 * d), feature_statistic(f, Statistic::Cum, g),
                        feature_statistic(f, Statistic::CumDecay, g), cache.positions()};
  };
  append(0, budget);
  for (int64_t step = 0; step < 3; ++step) {
    append(budget + step * w, w);
    const at::Tensor slots = random_slots(kv, budget, w);
    const CacheEntries want = previous_evict(state(), slots, budget);
    cache.evict(slots, budget);
    ASSERT_EQ(cache.size(), budget);
    const at::Tensor f = candidate_features(cache.candidates(budget), FeatureSet::Recency);
    EXPECT_TRUE(at::equal(feature_keys(f, g), want.keys)) << "step " << step;
    EXPECT_TRUE(at::equal(f.slice(-1, d, 2 * d), want.values));
    EXPECT_TRUE(at::equal(feature_statistic(f, Statistic::Cum, g), want.cum));
    EXPECT_TRUE(at::equal(feature_statistic(f, Statistic::CumDecay, g), want.cum_decay));
    EXPECT_TRUE(at::equal(cache.positions(), want.positions));
  }
}

TEST(SelectCompactCpu, BadShapesDtypesDevicesAndSlotsAreRefused) {
  const at::Tensor scores = at::randn({4, 16});
  EXPECT_THROW(select_drops(scores[0], 4, std::nullopt), c10::Error);
  EXPECT_THROW(select_drops(scores, 0, std::nullopt), c10::Error);
  EXPECT_THROW(select_drops(scores, 17, std::nullopt), c10::Error);
  EXPECT_THROW(select_drops(scores.to(at::kInt), 4, std::nullopt), c10::Error);
  EXPECT_THROW(select_drops(scores.to(at::kDouble), 4, std::nullopt), c10::Error);
  EXPECT_THROW(select_drops(at::empty({4, 16}, at::TensorOptions().device(at::kMeta)), 4, std::nullopt), c10::Error);

  const CacheEntries e = random_entries(4, 20, 8, 2, at::kFloat);
  const at::Tensor slots = random_slots(4, 16, 4);
  auto refused = [&](const CacheEntries& bad, const at::Tensor& s, int64_t budget, const std::string& why) {
    const CacheEntries before = clone(bad);
    try {
      compact_entries(bad, s, budget);
      ADD_FAILURE() << "accepted: " << why;
    } catch (const c10::Error& err) {
      EXPECT_NE(std::string(err.what()).find("compact_entries"), std::string::npos) << why << ": " << err.what();
    }
    EXPECT_TRUE(equal(bad, before)) << "changed the cache before refusing: " << why;
  };
  auto with = [&](const std::function<void(CacheEntries&)>& change) {
    CacheEntries c = clone(e);
    change(c);
    return c;
  };
  refused(with([](CacheEntries& c) { c.values = c.values.to(at::kBFloat16); }), slots, 16, "mixed K/V dtypes");
  refused(with([](CacheEntries& c) { c.keys = c.keys.to(at::kDouble), c.values = c.values.to(at::kDouble); }), slots,
          16, "float64 keys");
  refused(with([](CacheEntries& c) { c.cum = c.cum.to(at::kDouble); }), slots, 16, "float64 cum");
  refused(with([](CacheEntries& c) { c.positions = c.positions.to(at::kInt); }), slots, 16, "int32 positions");
  refused(with([](CacheEntries& c) { c.values = c.values.narrow(1, 0, 19).contiguous(); }), slots, 16, "short values");
  refused(with([](CacheEntries& c) { c.cum_decay = at::rand({4, 20, 3}); }), slots, 16, "G mismatch");
  refused(with([](CacheEntries& c) { c.values = c.keys; }), slots, 16, "keys and values share memory");
  refused(with([](CacheEntries& c) { c.cum = at::rand({1, 20, 2}).expand({4, 20, 2}); }), slots, 16, "expanded cum");
  refused(e, slots.to(at::kInt), 16, "int32 slots");
  refused(e, slots.slice(0, 0, 3), 16, "slots for 3 rows");
  refused(e, slots, 3, "W > budget");
  refused(e, slots, 21, "budget > S");
  refused(e, at::cat({slots.slice(1, 0, 3), slots.slice(1, 0, 1)}, 1), 16, "a repeated slot");
  refused(e, slots.masked_fill(slots == slots.max(), 16), 16, "a slot >= budget");
  refused(e, slots.masked_fill(slots == slots.min(), -1), 16, "a negative slot");
  // select_compact checks the cache against the scores before it selects anything.
  EXPECT_THROW(select_compact(at::randn({3, 16}), 4, std::nullopt, clone(e)), c10::Error);
  EXPECT_THROW(select_compact(at::randn({4, 24}), 4, std::nullopt, clone(e)), c10::Error);  // B > S
}

// --- sampled frequencies (shared by the CPU and GPU cases) ----------------------------------------

// Exact probability of each unordered set of `w` drops when drawing without replacement with
// weights exp(score) over `pool` (slot -> score): every ordered draw, multiplied out.
std::map<std::set<int64_t>, double> drop_set_probabilities(const std::map<int64_t, double>& pool, int64_t w) {
  std::map<std::set<int64_t>, double> out;
  std::function<void(std::set<int64_t>&, double)> draw = [&](std::set<int64_t>& taken, double p) {
    if (static_cast<int64_t>(taken.size()) == w) {
      out[taken] += p;
      return;
    }
    double left = 0;
    for (const auto& [slot, s] : pool) left += taken.count(slot) ? 0 : std::exp(s);
    for (const auto& [slot, s] : pool) {
      if (taken.count(slot)) continue;
      taken.insert(slot);
      draw(taken, p * std::exp(s) / left);
      taken.erase(slot);
    }
  };
  std::set<int64_t> none;
  draw(none, 1.0);
  return out;
}

std::vector<double> inclusion(const std::map<std::set<int64_t>, double>& sets, int64_t b) {
  std::vector<double> p(static_cast<std::size_t>(b), 0.0);
  for (const auto& [set, prob] : sets) {
    for (const int64_t slot : set) p[static_cast<std::size_t>(slot)] += prob;
  }
  return p;
}

// One score row of B candidates; a case draws W of them many times.
struct SamplingCase {
  std::vector<float> scores;
  int64_t w;
};

// B/W of 4 (twice) and 2 (where the pool is every candidate). Distinct scores, so the top-2W pool
// is unambiguous.
std::vector<SamplingCase> sampling_cases() {
  return {{{0.0f, 2.0f, -1.0f, 1.0f, 0.5f, -3.0f, 1.5f, -2.0f}, 2},
          {{0.3f, -0.2f, 1.1f, 2.0f, -1.5f, 0.8f, -0.6f, 1.6f, 0.1f, -0.9f, 1.3f, -2.2f, 0.6f, 0.0f, -0.4f, 0.9f}, 4},
          {{0.3f, -0.2f, 1.1f, 2.0f, -1.5f, 0.8f, -0.6f, 1.6f}, 4}};
}

// Draws `seeds` x `rows` times (every row of a call is one draw) and checks per-slot and per-set
// frequencies against the exact probabilities. With n = seeds x rows = 65536 draws one standard
// error is at most 0.002; the bound, 0.01, is 5 of them, while the wrong samplers one could write
// (uniform over the pool, the greedy top-W, and where B > 2W the softmax over all B) miss by more
// than 0.05 in some slot, which the test asserts too, so it cannot pass by accident.
void expect_sampled_frequencies(const at::Device& device) {
  const int64_t seeds = 8, rows = 8192;
  const double bound = 0.01;
  for (const SamplingCase& c : sampling_cases()) {
    const auto b = static_cast<int64_t>(c.scores.size());
    const at::Tensor row = at::tensor(c.scores);
    std::map<int64_t, double> pool, all;
    const at::Tensor top = std::get<1>(row.topk(2 * c.w));
    for (int64_t i = 0; i < b; ++i) all[i] = c.scores[static_cast<std::size_t>(i)];
    for (int64_t i = 0; i < 2 * c.w; ++i) pool[top[i].item<int64_t>()] = c.scores[static_cast<std::size_t>(top[i].item<int64_t>())];
    const auto want_sets = drop_set_probabilities(pool, c.w);
    const std::vector<double> want = inclusion(want_sets, b);
    const std::vector<double> softmax_all = inclusion(drop_set_probabilities(all, c.w), b);
    double miss_uniform = 0, miss_all = b > 2 * c.w ? 0 : 1, miss_greedy = 0;
    for (int64_t i = 0; i < b; ++i) {
      const double p = want[static_cast<std::size_t>(i)];
      miss_uniform = std::max(miss_uniform, std::abs(p - (pool.count(i) ? 0.5 : 0.0)));
      if (b > 2 * c.w) miss_all = std::max(miss_all, std::abs(p - softmax_all[static_cast<std::size_t>(i)]));
      miss_greedy = std::max(miss_greedy, std::abs(p - (top.slice(0, 0, c.w).eq(i).any().item<bool>() ? 1.0 : 0.0)));
    }
    ASSERT_GT(std::min({miss_uniform, miss_all, miss_greedy}), 5 * bound) << "the test could not tell samplers apart";

    std::vector<double> count(static_cast<std::size_t>(b), 0.0);
    std::map<std::set<int64_t>, double> set_count;
    const at::Tensor scores = row.unsqueeze(0).expand({rows, b}).contiguous().to(device);
    for (int64_t seed = 0; seed < seeds; ++seed) {
      const at::Tensor drops = select_drops(scores, c.w, static_cast<uint64_t>(1000 + seed)).cpu();
      ASSERT_EQ(drops.sizes(), at::IntArrayRef({rows, c.w}));
      ASSERT_TRUE((drops.slice(1, 1) > drops.slice(1, 0, -1)).all().item<bool>()) << "not ascending and distinct";
      const auto* d = drops.data_ptr<int64_t>();
      for (int64_t r = 0; r < rows; ++r) {
        std::set<int64_t> set(d + r * c.w, d + (r + 1) * c.w);
        for (const int64_t slot : set) count[static_cast<std::size_t>(slot)] += 1;
        set_count[set] += 1;
      }
    }
    const double n = static_cast<double>(seeds * rows);
    for (int64_t i = 0; i < b; ++i) {
      EXPECT_NEAR(count[static_cast<std::size_t>(i)] / n, want[static_cast<std::size_t>(i)], bound)
          << "slot " << i << " of case W " << c.w;
    }
    double in_sets = 0;
    for (const auto& [set, prob] : want_sets) {
      EXPECT_NEAR(set_count[set] / n, prob, bound) << "a drop set of case W " << c.w;
      in_sets += set_count[set];
    }
    EXPECT_EQ(in_sets, n) << "drops outside the top 2W";
  }
}

TEST(SelectCompactCpu, SampledFrequenciesFollowTheTopTwoWSoftmax) { expect_sampled_frequencies(at::kCPU); }

// --- GPU: the kernels against the references -----------------------------------------------------

TEST(SelectCompactGpu, SampledFrequenciesFollowTheTopTwoWSoftmax) {
  SKIP_WITHOUT_GPU();
  expect_sampled_frequencies(at::kCUDA);
  // A seed repeats its drops; another seed changes them.
  const at::Tensor scores = at::randn({64, 128}, at::kCUDA);
  EXPECT_TRUE(at::equal(select_drops(scores, 32, 9), select_drops(scores, 32, 9)));
  EXPECT_FALSE(at::equal(select_drops(scores, 32, 9), select_drops(scores, 32, 10)));
}

TEST(SelectCompactGpu, GreedyIndexSetsEqualTopWIncludingTies) {
  SKIP_WITHOUT_GPU();
  at::manual_seed(5);
  // B/W of 2 and 4, awkward sizes, and a B large enough to need more than 48 KiB of shared memory.
  for (const auto& [rows, b, w] : {std::tuple<int64_t, int64_t, int64_t>{1, 2, 1}, {5, 8, 4}, {15, 16, 4},
                                   {12, 66, 33}, {24, 1000, 250}, {64, 1024, 256}, {64, 1024, 512},
                                   {3, 2048, 512}, {2, 8192, 2048}}) {
    for (const bool ties : {false, true}) {
      at::Tensor scores = ties ? at::randint(-2, 3, {rows, b}).to(at::kFloat) : at::randn({rows, b});
      if (ties && b >= 8) {
        scores[0][1] = -0.0f;
        scores[0][2] = 0.0f;
        scores[0][3] = INFINITY;
        scores[0][4] = -INFINITY;
        scores[0][5] = NAN;
        scores[rows - 1][b - 1] = NAN;
      }
      for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
        const at::Tensor s = scores.to(dtype);
        const at::Tensor got = select_drops(s.cuda(), w, std::nullopt);
        EXPECT_TRUE(at::equal(got.cpu(), top_w(s, w))) << rows << "x" << b << " w " << w << " ties " << ties << " " << dtype;
      }
    }
  }
}

TEST(SelectCompactGpu, CompactionEqualsTheReferenceForAllDtypes) {
  SKIP_WITHOUT_GPU();
  at::manual_seed(6);
  // (rollouts x heads, B, W, d, G): B/W of 2 and 4; odd d and G give 2- and 4-byte moves.
  for (const auto& [rows, b, w, d, g] :
       {std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>{1, 2, 1, 1, 1}, {3 * 4, 16, 8, 64, 4},
        {3 * 4, 16, 4, 128, 4}, {2 * 8, 1024, 256, 128, 4}, {2 * 8, 1024, 512, 128, 4}, {5, 66, 33, 3, 3},
        {7, 100, 25, 96, 7}}) {
    for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
      const CacheEntries before = random_entries(rows, b + w, d, g, dtype);
      const at::Tensor slots = random_slots(rows, b, w);
      const CacheEntries want = clone(before);
      compact_entries_reference(want, slots, b);
      const CacheEntries gpu{before.keys.cuda(), before.values.cuda(), before.cum.cuda(), before.cum_decay.cuda(),
                             before.positions.cuda()};
      compact_entries(gpu, slots.cuda(), b);
      EXPECT_TRUE(equal(to_cpu(gpu), want)) << rows << "x" << b << " w " << w << " d " << d << " g " << g << " " << dtype;
    }
  }
  // A narrowed cache (strided rows, as LayerCache leaves it) and a transposed cum (copied back).
  const CacheEntries before = random_entries(6, 40, 16, 2, at::kBFloat16);
  const at::Tensor slots = random_slots(6, 32, 8);
  const CacheEntries want = clone(before);
  compact_entries_reference(want, slots, 32);
  CacheEntries gpu{at::empty({6, 48, 16}, at::TensorOptions().dtype(at::kBFloat16).device(at::kCUDA)).narrow(1, 0, 40),
                   before.values.cuda(), before.cum.cuda().transpose(1, 2).contiguous().transpose(1, 2),
                   before.cum_decay.cuda(), before.positions.cuda()};
  gpu.keys.copy_(before.keys);
  compact_entries(gpu, slots.cuda(), 32);
  EXPECT_TRUE(equal(to_cpu(gpu), want));
}

TEST(SelectCompactGpu, SelectCompactEqualsTheReferenceOnBatchedRollouts) {
  SKIP_WITHOUT_GPU();
  at::manual_seed(7);
  const int64_t rows = 8 * 8, b = 1024, w = 256;
  const at::Tensor scores = at::randn({rows, b});
  const CacheEntries before = random_entries(rows, b + w, 128, 4, at::kBFloat16);
  const CacheEntries want = clone(before);
  const at::Tensor want_slots = top_w(scores, w);
  compact_entries_reference(want, want_slots, b);
  const CacheEntries gpu{before.keys.cuda(), before.values.cuda(), before.cum.cuda(), before.cum_decay.cuda(),
                         before.positions.cuda()};
  EXPECT_TRUE(at::equal(select_compact(scores.cuda(), w, std::nullopt, gpu).cpu(), want_slots));
  EXPECT_TRUE(equal(to_cpu(gpu), want));
  // Sampled: whatever was drawn, the cache is compacted by exactly those slots.
  const CacheEntries sampled{before.keys.cuda(), before.values.cuda(), before.cum.cuda(), before.cum_decay.cuda(),
                             before.positions.cuda()};
  const at::Tensor drawn = select_compact(scores.cuda(), w, 11, sampled).cpu();
  const CacheEntries want_sampled = clone(before);
  compact_entries_reference(want_sampled, drawn, b);
  EXPECT_TRUE(equal(to_cpu(sampled), want_sampled));
}

#ifdef FORESIGHT_WITH_CUDA
// The launchers on poisoned buffers: every slot is written, and a row with bad slots is left
// untouched and reported while the others are compacted.
TEST(SelectCompactGpu, LaunchersWriteEverySlotAndSkipBadRows) {
  SKIP_WITHOUT_GPU();
  at::manual_seed(8);
  const at::Tensor scores = at::randn({9, 100}, at::kCUDA);
  at::Tensor slots = at::full({9, 25}, -7, at::TensorOptions().dtype(at::kLong).device(at::kCUDA));
  ASSERT_EQ(launch_select_drops(scores.data_ptr<float>(), 9, 100, 25, false, 0, slots.data_ptr<int64_t>(), nullptr), 0);
  EXPECT_TRUE(at::equal(slots.cpu(), top_w(scores.cpu(), 25)));

  const at::Tensor data = at::randn({4, 30, 8}, at::kCUDA), before = data.cpu();
  at::Tensor drops = random_slots(4, 20, 5);
  drops = std::get<0>(drops.sort(1));
  drops[1][2] = drops[1][1];  // row 1: a repeated slot
  drops[2][4] = 20;           // row 2: a slot past the budget
  const at::Tensor bad = at::zeros({1}, at::TensorOptions().dtype(at::kInt).device(at::kCUDA));
  const CompactPlane plane{data.data_ptr(), 30 * 8 * 4, 8 * 4};
  const at::Tensor d = drops.cuda();
  ASSERT_EQ(launch_compact_entries(&plane, 1, 4, 30, d.data_ptr<int64_t>(), 5, 20, bad.data_ptr<int32_t>(), nullptr), 0);
  EXPECT_EQ(bad.item<int>(), 1);
  const at::Tensor got = data.cpu();
  EXPECT_TRUE(at::equal(got[1], before[1]));
  EXPECT_TRUE(at::equal(got[2], before[2]));
  for (const int64_t r : {0, 3}) {
    const at::Tensor keep = at::ones({30}, at::kBool).index_fill_(0, drops[r], false);
    EXPECT_TRUE(at::equal(got[r].slice(0, 0, 25), before[r].index({keep}))) << "row " << r;
  }
  // Without a flag (select_compact's launch): the bad rows are skipped all the same, and nothing is
  // written through the null pointer (a fault would surface at the copy back).
  const at::Tensor unflagged = before.cuda();
  const CompactPlane plane2{unflagged.data_ptr(), 30 * 8 * 4, 8 * 4};
  ASSERT_EQ(launch_compact_entries(&plane2, 1, 4, 30, d.data_ptr<int64_t>(), 5, 20, nullptr, nullptr), 0);
  at::Tensor got2;
  ASSERT_NO_THROW(got2 = unflagged.cpu());
  EXPECT_TRUE(at::equal(got2, got));
}
#endif

}  // namespace
}  // namespace foresight
