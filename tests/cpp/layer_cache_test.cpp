#include "cache/layer_cache.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <vector>

#include "policy/features.h"

namespace foresight {
namespace {

// DESIGN.md §4 by hand: every cache entry carries its own K, V, position and running totals; each
// chunk computes plain softmax attention per query head, then statistics over the queries.
struct Entry {
  int64_t position;
  std::vector<double> k, v, cum, decay;
};

struct NaiveCache {
  int64_t kv, g, d;
  std::vector<std::vector<Entry>> heads;  // per KV head

  // Appends a chunk and returns, per KV head and candidate (first `budget` entries), the 8G stats.
  std::vector<std::vector<std::vector<double>>> append(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                       int64_t start, int64_t budget, bool recency) {
    const int64_t t = q.size(0);
    std::vector<std::vector<std::vector<double>>> stats(static_cast<std::size_t>(kv));
    for (int64_t h = 0; h < kv; ++h) {
      auto& entries = heads[h];
      const std::size_t old = entries.size();
      for (int64_t i = 0; i < t; ++i) {
        Entry e{start + i, {}, {}, std::vector<double>(g, 0), std::vector<double>(g, 0)};
        for (int64_t c = 0; c < d; ++c) {
          e.k.push_back(k[i][h][c].item<double>());
          e.v.push_back(v[i][h][c].item<double>());
        }
        entries.push_back(e);
      }
      // probs[head in group][query][entry]
      std::vector<std::vector<std::vector<double>>> p(g, std::vector<std::vector<double>>(t, std::vector<double>(entries.size(), 0)));
      for (int64_t gi = 0; gi < g; ++gi) {
        for (int64_t i = 0; i < t; ++i) {
          const std::size_t visible = old + static_cast<std::size_t>(i) + 1;
          double mx = -1e300, total = 0;
          std::vector<double> s(visible);
          for (std::size_t j = 0; j < visible; ++j) {
            double dot = 0;
            for (int64_t c = 0; c < d; ++c) dot += q[i][h * g + gi][c].item<double>() * entries[j].k[c];
            s[j] = dot / std::sqrt(static_cast<double>(d));
            mx = std::max(mx, s[j]);
          }
          for (double& x : s) total += (x = std::exp(x - mx));
          for (std::size_t j = 0; j < visible; ++j) p[gi][i][j] = s[j] / total;
        }
      }
      for (std::size_t j = 0; j < entries.size(); ++j) {
        for (int64_t gi = 0; gi < g; ++gi) {
          double col = 0;
          for (int64_t i = 0; i < t; ++i) col += p[gi][i][j];
          const bool fresh = j >= old;
          entries[j].cum[gi] = (fresh ? 0 : entries[j].cum[gi]) + col;
          entries[j].decay[gi] = (fresh ? 0 : 0.9 * entries[j].decay[gi]) + col;
        }
      }
      for (int64_t j = 0; j < budget && j < static_cast<int64_t>(entries.size()); ++j) {
        std::vector<double> row;
        auto sum_last = [&](int64_t gi, int64_t n) {
          double acc = 0;
          for (int64_t i = std::max<int64_t>(0, t - n); i < t; ++i) acc += p[gi][i][j];
          return acc;
        };
        for (int stat = 0; stat < 8; ++stat) {
          for (int64_t gi = 0; gi < g; ++gi) {
            double mx = 0, mn = 1;
            for (int64_t i = 0; i < t; ++i) mx = std::max(mx, p[gi][i][j]), mn = std::min(mn, p[gi][i][j]);
            const double values[8] = {mx, mn, sum_last(gi, t), sum_last(gi, recency ? 16 : t), sum_last(gi, recency ? 8 : t),
                                      sum_last(gi, recency ? 32 : t), entries[j].cum[gi], entries[j].decay[gi]};
            row.push_back(values[stat]);
          }
        }
        stats[h].push_back(row);
      }
    }
    return stats;
  }

  void evict(const std::vector<std::vector<int64_t>>& slots) {
    for (int64_t h = 0; h < kv; ++h) {
      std::vector<Entry> kept;
      for (std::size_t j = 0; j < heads[h].size(); ++j) {
        if (std::find(slots[h].begin(), slots[h].end(), static_cast<int64_t>(j)) == slots[h].end()) kept.push_back(heads[h][j]);
      }
      heads[h] = kept;
    }
  }
};

void expect_features(const at::Tensor& got, const NaiveCache& naive, const std::vector<std::vector<std::vector<double>>>& stats,
                     int64_t budget) {
  const int64_t d = naive.d;
  for (int64_t h = 0; h < naive.kv; ++h) {
    for (int64_t j = 0; j < budget; ++j) {
      const Entry& e = naive.heads[h][j];
      for (int64_t c = 0; c < d; ++c) {
        EXPECT_NEAR(got[h][j][c].item<double>(), e.k[c], 1e-6);
        EXPECT_NEAR(got[h][j][d + c].item<double>(), e.v[c], 1e-6);
      }
      for (std::size_t f = 0; f < stats[h][j].size(); ++f) {
        const double want = stats[h][j][f];
        EXPECT_NEAR(got[h][j][2 * d + static_cast<int64_t>(f)].item<double>(), want, 1e-5 * std::max(1.0, std::abs(want)))
            << "head " << h << " slot " << j << " feature " << f;
      }
    }
  }
}

// (query heads, KV heads, recency features, piece): the cache takes each chunk in pieces of at most
// `piece` tokens (0: whole), as decoding does (DESIGN.md §10); the naive cache takes it whole.
class LayerCacheFeatures : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, bool, int64_t>> {};

TEST_P(LayerCacheFeatures, MatchNaiveStatisticsAcrossStepsWithDrops) {
  const auto [heads, kv, recency, piece] = GetParam();
  // W = 20 makes the last-8 and last-16 sums differ from the full sum (and last-32 equal it).
  const int64_t d = 4, budget = 40, w = 20, steps = 3;
  at::manual_seed(heads * 10 + kv);
  NaiveCache naive{kv, heads / kv, d, std::vector<std::vector<Entry>>(static_cast<std::size_t>(kv))};
  LayerCache cache;
  auto chunk = [&](int64_t start, int64_t t) {
    const LayerQKV x{at::randn({t, heads, d}) * 1.5, at::randn({t, kv, d}) * 1.5, at::randn({t, kv, d})};
    cache.begin_chunk(t, /*keep_rows=*/true);
    for (int64_t from = 0, n = piece > 0 ? piece : t; from < t; from += n) {
      const auto part = [&](const at::Tensor& y) { return y.slice(0, from, std::min(t, from + n)); };
      cache.append({part(x.q), part(x.k), part(x.v)}, start + from);
    }
    return naive.append(x.q, x.k, x.v, start, budget, recency);
  };
  const FeatureSet set = recency ? FeatureSet::Recency : FeatureSet::Reference;
  chunk(0, budget);
  int64_t start = budget;
  for (int64_t s = 0; s < steps; ++s, start += w) {
    const auto stats = chunk(start, w);
    ASSERT_EQ(cache.size(), budget + w);
    expect_features(candidate_features(cache.candidates(budget), set), naive, stats, budget);
    const at::Tensor drops = std::get<0>(at::randperm(budget).slice(0, 0, w).sort()).unsqueeze(0).repeat({kv, 1});
    const at::Tensor per_head = kv > 1 ? at::cat({drops.slice(0, 0, 1), std::get<0>(at::randperm(budget).slice(0, 0, w).sort()).unsqueeze(0).repeat({kv - 1, 1})}) : drops;
    std::vector<std::vector<int64_t>> slots(static_cast<std::size_t>(kv));
    for (int64_t h = 0; h < kv; ++h) {
      for (int64_t i = 0; i < w; ++i) slots[h].push_back(per_head[h][i].item<int64_t>());
    }
    cache.evict(per_head, budget);
    naive.evict(slots);
    ASSERT_EQ(cache.size(), budget);
    for (int64_t h = 0; h < kv; ++h) {
      for (int64_t j = 0; j < budget; ++j) EXPECT_EQ(cache.positions()[h][j].item<int64_t>(), naive.heads[h][j].position);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Groups, LayerCacheFeatures,
                         ::testing::Values(std::make_tuple(2, 2, true, 0), std::make_tuple(6, 2, true, 0),
                                           std::make_tuple(4, 1, false, 0), std::make_tuple(6, 2, false, 0),
                                           std::make_tuple(6, 2, true, 1), std::make_tuple(4, 1, true, 7)),
                         [](const auto& info) {
                           // A stream, not "G" + std::to_string(..): GCC 12 inlines that operator+
                           // here into a memcpy it then warns about (-Wstringop-overflow, a false positive).
                           std::ostringstream name;
                           name << "G" << std::get<0>(info.param) / std::get<1>(info.param)
                                << (std::get<2>(info.param) ? "_recency" : "_reference");
                           if (std::get<3>(info.param) > 0) name << "_pieces" << std::get<3>(info.param);
                           return name.str();
                         });

}  // namespace
}  // namespace foresight
