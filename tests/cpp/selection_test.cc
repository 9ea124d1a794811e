// Tests of corpus selections and the plan over them (include/cellfeed/selection.h, plan.h):
// RowSelection against a plain set, lanes covered exactly (each lane's rows once per
// pass, across ranks), blocks as runs of consecutive selected rows within one file,
// proportions per window and per batch, random access, filter parsing, rounding.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "cellfeed/plan.h"
#include "cellfeed/selection.h"
#include "corpus/filter.h"
#include "corpus/quota.h"

namespace cellfeed {
namespace {

std::shared_ptr<const RowSelection> RandomSelection(int64_t n, double p, uint32_t seed,
                                                    std::vector<int64_t>* rows) {
  std::mt19937 g(seed);
  std::bernoulli_distribution keep(p);
  auto s = std::make_shared<RowSelection>(n);
  for (int64_t r = 0; r < n; ++r) {
    if (keep(g)) {
      s->Set(r);
      rows->push_back(r);
    }
  }
  s->Finish();
  return s;
}

TEST(RowSelection, RankSelectAgainstAList) {
  for (double p : {0.0, 0.01, 0.5, 0.97, 1.0}) {
    std::vector<int64_t> rows;
    auto s = RandomSelection(5000, p, 7, &rows);
    ASSERT_EQ(s->count(), static_cast<int64_t>(rows.size()));
    for (int64_t r = 0; r <= 5000; r += 7) {
      const int64_t want = std::lower_bound(rows.begin(), rows.end(), r) - rows.begin();
      ASSERT_EQ(s->Rank(r), want) << "p=" << p << " row " << r;
    }
    for (size_t k = 0; k < rows.size(); ++k) ASSERT_EQ(s->Select(static_cast<int64_t>(k)), rows[k]);
    if (rows.size() > 10) {
      std::vector<int64_t> got;
      s->AppendFrom(3, static_cast<int64_t>(rows.size()) - 3, &got);
      ASSERT_EQ(got, std::vector<int64_t>(rows.begin() + 3, rows.end()));
    }
    std::vector<int64_t> each;
    s->ForEach(100, 4321, [&](int64_t r) { each.push_back(r); });
    std::vector<int64_t> want;
    for (int64_t r : rows)
      if (r >= 100 && r < 4321) want.push_back(r);
    ASSERT_EQ(each, want);
  }
}

struct Epoch {
  std::vector<std::vector<int64_t>> batches;
  std::vector<std::vector<int32_t>> lanes;
};

Epoch Collect(const EpochPlan& plan) {
  Epoch e;
  for (int64_t k = 0; k < plan.num_fetches(); ++k) {
    const Fetch f = plan.GetFetch(k);
    EXPECT_EQ(f.lanes.size(), f.rows.size());
    for (const auto& b : f.batches) {
      std::vector<int64_t> rows;
      std::vector<int32_t> lanes;
      for (int32_t p : b) {
        rows.push_back(f.rows[p]);
        lanes.push_back(f.lanes[p]);
      }
      e.batches.push_back(rows);
      e.lanes.push_back(lanes);
    }
  }
  return e;
}

// Three lanes over 3 files of 1,000 rows: a sparse one, a dense one, and the dense one's
// second copy (upsampling), as a corpus makes them.
struct Fixture {
  std::vector<int64_t> sizes{1000, 1000, 1000};
  std::vector<std::vector<int64_t>> lane_rows{3};
  std::shared_ptr<EpochSelection> sel = std::make_shared<EpochSelection>();
  Fixture() {
    auto a = RandomSelection(3000, 0.1, 1, &lane_rows[0]);
    auto b = RandomSelection(3000, 0.6, 2, &lane_rows[1]);
    lane_rows[2] = lane_rows[1];
    sel->lanes = {{a, 11, 0, 0}, {b, 22, 1, 0}, {b, 23, 1, 1}};
  }
};

TEST(SelectionPlan, EveryLaneRowOncePerPassAcrossRanks) {
  Fixture fx;
  SamplingConfig c;
  c.batch_size = 32;
  c.block_size = 4;
  c.fetch_factor = 4;
  c.remainder = RemainderPolicy::kDrop;
  for (int world : {1, 3}) {
    std::map<std::pair<int32_t, int64_t>, int> seen;  // (lane, row) -> times
    int64_t total = 0;
    std::vector<int64_t> batches_per_rank;
    for (int r = 0; r < world; ++r) {
      auto p = EpochPlan::Make(fx.sizes, c, 2, r, world, {}, fx.sel);
      ASSERT_TRUE(p.ok()) << p.status().message();
      batches_per_rank.push_back(p->num_batches());
      const Epoch e = Collect(*p);
      for (size_t b = 0; b < e.batches.size(); ++b)
        for (size_t i = 0; i < e.batches[b].size(); ++i) ++seen[{e.lanes[b][i], e.batches[b][i]}], ++total;
    }
    for (int64_t n : batches_per_rank) EXPECT_EQ(n, batches_per_rank[0]);
    const int64_t all = static_cast<int64_t>(fx.lane_rows[0].size() + 2 * fx.lane_rows[1].size());
    EXPECT_EQ(total, all / world * world);
    EXPECT_GE(total, all - world + 1);
    for (const auto& [key, times] : seen) {
      EXPECT_EQ(times, 1);
      const auto& rows = fx.lane_rows[static_cast<size_t>(key.first)];
      EXPECT_TRUE(std::binary_search(rows.begin(), rows.end(), key.second));
    }
  }
}

TEST(SelectionPlan, BlocksAreRunsOfSelectedRowsWithinAFile) {
  // One lane, batches of one block each (fetch_factor 1): every batch must be a run of
  // consecutive selected rows inside one file (a file's last run may be shorter).
  std::vector<int64_t> rows;
  auto sel = std::make_shared<EpochSelection>();
  sel->lanes = {{RandomSelection(3000, 0.3, 9, &rows), 5, 0, 0}};
  SamplingConfig c;
  c.batch_size = 8;
  c.block_size = 8;
  c.fetch_factor = 1;
  auto p = EpochPlan::Make({1000, 1000, 1000}, c, 0, 0, 1, {}, sel);
  ASSERT_TRUE(p.ok());
  const Epoch e = Collect(*p);
  std::multiset<int64_t> all;
  int short_runs = 0;
  for (auto batch : e.batches) {
    std::sort(batch.begin(), batch.end());
    // Split by file: each part is a run of consecutive selected rows; a part shorter than
    // a block is a file's tail (its run ends at the file's last selected row).
    for (size_t lo = 0; lo < batch.size();) {
      size_t hi = lo;
      while (hi < batch.size() && batch[hi] / 1000 == batch[lo] / 1000) ++hi;
      const size_t first = std::lower_bound(rows.begin(), rows.end(), batch[lo]) - rows.begin();
      for (size_t i = lo; i < hi; ++i) EXPECT_EQ(batch[i], rows[first + (i - lo)]);
      if (hi - lo < 8) {
        ++short_runs;
        const size_t next = first + (hi - lo);
        EXPECT_TRUE(next == rows.size() || rows[next] / 1000 != batch[lo] / 1000);
      }
      lo = hi;
    }
    all.insert(batch.begin(), batch.end());
  }
  EXPECT_LE(short_runs, 3);
  EXPECT_EQ(all, std::multiset<int64_t>(rows.begin(), rows.end()));
}

TEST(SelectionPlan, LaneProportionsHoldInEveryBatch) {
  Fixture fx;
  SamplingConfig c;
  c.batch_size = 64;
  c.block_size = 4;
  c.fetch_factor = 8;
  auto p = EpochPlan::Make(fx.sizes, c, 1, 0, 1, {}, fx.sel);
  ASSERT_TRUE(p.ok());
  const Epoch e = Collect(*p);
  const double n0 = static_cast<double>(fx.lane_rows[0].size()), n1 = static_cast<double>(fx.lane_rows[1].size());
  const double total = n0 + 2 * n1;
  int checked = 0;
  for (size_t b = 0; b + 2 < e.batches.size(); ++b) {  // full batches before the tails
    std::vector<int> k(3, 0);
    for (int32_t l : e.lanes[b]) ++k[static_cast<size_t>(l)];
    // Within one block (4 cells) per window plus one cell of the fetch deal, per lane.
    EXPECT_NEAR(k[0], 64 * n0 / total, 6.0) << "batch " << b;
    EXPECT_NEAR(k[1], 64 * n1 / total, 6.0) << "batch " << b;
    ++checked;
  }
  EXPECT_GT(checked, 20);
}

TEST(SelectionPlan, RandomAccessAndSeedDependence) {
  Fixture fx;
  SamplingConfig c;
  c.batch_size = 16;
  c.block_size = 2;
  c.fetch_factor = 4;
  auto p = EpochPlan::Make(fx.sizes, c, 5, 0, 1, {}, fx.sel);
  auto q = EpochPlan::Make(fx.sizes, c, 5, 0, 1, {}, fx.sel);
  auto other = EpochPlan::Make(fx.sizes, c, 6, 0, 1, {}, fx.sel);
  ASSERT_TRUE(p.ok() && q.ok() && other.ok());
  for (int64_t k = p->num_fetches() - 1; k >= 0; k -= 7) {
    EXPECT_EQ(p->GetFetch(k).rows, q->GetFetch(k).rows);
    EXPECT_EQ(p->GetFetch(k).batches, q->GetFetch(k).batches);
  }
  EXPECT_NE(p->GetFetch(0).rows, other->GetFetch(0).rows);
}

TEST(SelectionPlan, LaneCellsOfRankSumToTheLanes) {
  Fixture fx;
  SamplingConfig c;
  c.batch_size = 10;
  c.block_size = 3;
  c.fetch_factor = 2;
  std::vector<int64_t> sum(3, 0);
  for (int r = 0; r < 4; ++r) {
    auto p = EpochPlan::Make(fx.sizes, c, 0, r, 4, {}, fx.sel);
    ASSERT_TRUE(p.ok());
    const std::vector<int64_t> cells = p->LaneCellsOfRank();
    const Epoch e = Collect(*p);
    std::vector<int64_t> counted(3, 0);
    for (const auto& lanes : e.lanes)
      for (int32_t l : lanes) ++counted[static_cast<size_t>(l)];
    EXPECT_EQ(cells, counted) << "rank " << r;
    for (int l = 0; l < 3; ++l) sum[l] += cells[l];
  }
  // Padding adds at most world_size - 1 cells in all.
  const int64_t want = static_cast<int64_t>(fx.lane_rows[0].size() + 2 * fx.lane_rows[1].size());
  const int64_t got = sum[0] + sum[1] + sum[2];
  EXPECT_GE(got, want);
  EXPECT_LT(got, want + 4);
}

TEST(FilterParser, GrammarAndErrors) {
  auto ok = corpus::ParseFilter("not (a == 'x' or b >= -1.5e2) and c not in [1, 2,] and `odd name` != true");
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(corpus::FilterColumns(**ok), (std::vector<std::string>{"a", "b", "c", "odd name"}));
  for (const char* bad : {"a ==", "a = 1", "(a == 1", "a in 1", "a == b", "== 1", "a == 'x", "a ~ 2"}) {
    auto r = corpus::ParseFilter(bad);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find(bad), std::string::npos) << r.status().message();
  }
}

TEST(LargestRemainder, ExactTotalsAndTieBreak) {
  EXPECT_EQ(corpus::LargestRemainder(10, {1, 1, 1}), (std::vector<int64_t>{4, 3, 3}));
  EXPECT_EQ(corpus::LargestRemainder(7, {0.5, 0.25, 0.25}), (std::vector<int64_t>{3, 2, 2}));  // 3.5, 1.75, 1.75
  EXPECT_EQ(corpus::LargestRemainder(5, {0, 2, 0}), (std::vector<int64_t>{0, 5, 0}));
  std::mt19937 g(3);
  for (int t = 0; t < 200; ++t) {
    std::vector<double> m(1 + g() % 7);
    for (double& x : m) x = (g() % 1000) / 7.0;
    if (std::all_of(m.begin(), m.end(), [](double x) { return x == 0; })) m[0] = 1;
    const int64_t total = g() % 100000;
    const auto s = corpus::LargestRemainder(total, m);
    int64_t sum = 0;
    double msum = 0;
    for (double x : m) msum += x;
    for (size_t i = 0; i < m.size(); ++i) {
      sum += s[i];
      EXPECT_LE(std::abs(s[i] - total * m[i] / msum), 1.0);
    }
    EXPECT_EQ(sum, total);
  }
}

}  // namespace
}  // namespace cellfeed
