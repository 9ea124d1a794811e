// Tests of the elastic resume of an epoch plan (EpochPlan::Make's `earlier` passes): a
// pass interrupted at one world size, continued at another (and again), delivers every
// cell the interrupted passes did not, exactly once (plus its own padding), with equal
// batch counts on every rank; with DataLoader-worker layouts, other batch sizes,
// selections (lanes) and chunk-like variable blocks. The reference is the set of cells of
// the uninterrupted epoch and the batches each interrupted rank yielded.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <utility>
#include <vector>

#include "cellfeed/plan.h"
#include "cellfeed/selection.h"

namespace cellfeed {
namespace {

using Cell = std::pair<int32_t, int64_t>;  // (lane, row); lane 0 without a selection
using Cells = std::map<Cell, int>;         // cell -> times delivered

struct Case {
  std::vector<int64_t> sizes;
  SamplingConfig config;
  std::vector<int64_t> block_starts;
  std::shared_ptr<const EpochSelection> selection;
};

EpochPlan Plan(const Case& s, const SamplingConfig& c, int rank, int world,
               const std::vector<InterruptedPass>& earlier) {
  auto r = EpochPlan::Make(s.sizes, c, 5, rank, world, s.block_starts, s.selection, earlier);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return std::move(r).value();
}

// The cells of batches b of `plan` with b < next[(b / fetch_factor) % next.size()]
// (all batches: next = {num_batches}), added to `out`; returns how many batches.
int64_t Take(const EpochPlan& plan, const std::vector<int64_t>& next, Cells* out) {
  const int64_t ff = plan.config().fetch_factor;
  int64_t taken = 0;
  for (int64_t k = 0; k < plan.num_fetches(); ++k) {
    const Fetch f = plan.GetFetch(k);
    for (size_t j = 0; j < f.batches.size(); ++j) {
      const int64_t b = k * ff + static_cast<int64_t>(j);
      if (b >= next[static_cast<size_t>((b / ff) % static_cast<int64_t>(next.size()))]) continue;
      ++taken;
      for (int32_t p : f.batches[j]) ++(*out)[{f.lanes.empty() ? 0 : f.lanes[p], f.rows[p]}];
    }
  }
  return taken;
}

// Every cell of the epoch, from a plain single-rank pass.
Cells Epoch(const Case& s) {
  Cells all;
  SamplingConfig c = s.config;
  c.remainder = RemainderPolicy::kDrop;
  c.drop_last = false;
  const EpochPlan p = Plan(s, c, 0, 1, {});
  Take(p, {p.num_batches()}, &all);
  for (const auto& [cell, n] : all) EXPECT_EQ(n, 1);
  return all;
}

struct Step {  // one interrupted pass: its shape, and how far its ranks got
  int world;
  int64_t batch_size, fetch_factor;
  std::vector<std::vector<int64_t>> next;
};

// Runs the interrupted passes, then a last pass at `world` to the end; checks coverage.
void CheckChain(const Case& s, const std::vector<Step>& steps, int world, int64_t batch_size) {
  const Cells all = Epoch(s);
  std::vector<InterruptedPass> earlier;
  Cells consumed;
  for (const Step& st : steps) {
    SamplingConfig c = s.config;
    c.batch_size = st.batch_size;
    c.fetch_factor = st.fetch_factor;
    for (int r = 0; r < st.world; ++r) {
      const EpochPlan p = Plan(s, c, r, st.world, earlier);
      Take(p, st.next[st.next.size() == 1 ? 0 : static_cast<size_t>(r)], &consumed);
    }
    earlier.push_back({st.world, st.batch_size, st.fetch_factor, st.next});
  }
  SamplingConfig c = s.config;
  c.batch_size = batch_size;
  Cells rest;
  std::vector<int64_t> batches;
  for (int r = 0; r < world; ++r) {
    const EpochPlan p = Plan(s, c, r, world, earlier);
    batches.push_back(p.num_batches());
    EXPECT_EQ(Take(p, {p.num_batches()}, &rest), p.num_batches());
  }
  for (int64_t b : batches) EXPECT_EQ(b, batches[0]) << "ranks must yield equal batch counts";
  int64_t repeats = 0, owed = 0, lost = 0;
  for (const auto& [cell, n] : rest) {
    EXPECT_TRUE(all.count(cell)) << "row " << cell.second << " is not a cell of the epoch";
    EXPECT_FALSE(consumed.count(cell)) << "row " << cell.second << " delivered again after resume";
    repeats += n - 1;
  }
  for (const auto& [cell, n] : all) {
    if (consumed.count(cell)) continue;
    ++owed;
    if (!rest.count(cell)) ++lost;
  }
  if (s.config.remainder == RemainderPolicy::kPad && !s.config.drop_last) {
    EXPECT_EQ(lost, 0) << "every owed cell must be delivered";
    EXPECT_LT(repeats, world);
    EXPECT_EQ(owed + repeats, world * ((owed + world - 1) / world));
  } else {
    EXPECT_EQ(repeats, 0);
    const int64_t slack = s.config.drop_last ? world * batch_size : world;
    EXPECT_LT(lost, slack);
  }
  EXPECT_GT(owed, 0);
}

Case Files() {
  Case s;
  s.sizes = {131, 0, 57, 250};
  s.config.batch_size = 8;
  s.config.block_size = 4;
  s.config.fetch_factor = 3;
  s.config.seed = 11;
  return s;
}

TEST(ElasticPlan, ResumeOnFewerAndMoreRanks) {
  const Case s = Files();
  // 2 ranks stopped after 5 batches each (inside the second fetch), then 1, 3 or 2 ranks.
  for (int world : {1, 2, 3, 7}) CheckChain(s, {{2, 8, 3, {{5}}}}, world, 8);
  // At a fetch boundary, at the start, and at the end of the epoch.
  for (int64_t k : {0, 3, 6}) CheckChain(s, {{2, 8, 3, {{k}}}}, 3, 8);
}

TEST(ElasticPlan, RanksThatGotDifferentlyFar) {
  const Case s = Files();
  CheckChain(s, {{3, 8, 3, {{4}, {5}, {0}}}}, 2, 8);
}

TEST(ElasticPlan, DataLoaderWorkerLayouts) {
  const Case s = Files();
  // 2 workers: worker 0 (fetches 0, 2, ...) at batch 7, worker 1 (fetches 1, 3) at 4.
  CheckChain(s, {{2, 8, 3, {{7, 4}}}}, 3, 8);
  CheckChain(s, {{2, 8, 3, {{7, 4}}}}, 1, 8);
}

TEST(ElasticPlan, PreemptedTwiceAndOtherBatchSizes) {
  const Case s = Files();
  CheckChain(s, {{2, 8, 3, {{5}}}, {3, 8, 3, {{2}}}}, 1, 8);
  CheckChain(s, {{2, 8, 3, {{5}}}, {1, 5, 2, {{9}}}, {4, 6, 1, {{1, 2}}}}, 2, 16);
}

TEST(ElasticPlan, DropPoliciesLoseOnlyTheLastPassRemainder) {
  Case s = Files();
  s.config.remainder = RemainderPolicy::kDrop;
  CheckChain(s, {{2, 8, 3, {{5}}}}, 3, 8);
  s.config.drop_last = true;
  CheckChain(s, {{3, 8, 3, {{4}}}}, 2, 8);
}

TEST(ElasticPlan, WithoutShuffle) {
  Case s = Files();
  s.config.shuffle = false;
  CheckChain(s, {{2, 8, 3, {{5}}}}, 3, 8);
}

TEST(ElasticPlan, VariableBlocks) {
  Case s = Files();
  s.block_starts = {0, 10, 17, 40, 41, 90, 131, 150, 188, 200, 300, 437};
  s.config.chunk_blocks = true;
  CheckChain(s, {{2, 8, 3, {{5}}}}, 3, 8);
}

std::shared_ptr<const RowSelection> Every(int64_t n, int64_t step, int64_t from) {
  auto s = std::make_shared<RowSelection>(n);
  for (int64_t r = from; r < n; r += step) s->Set(r);
  s->Finish();
  return s;
}

TEST(ElasticPlan, SelectionsKeepEveryLaneCell) {
  Case s = Files();
  auto sel = std::make_shared<EpochSelection>();
  auto a = Every(438, 3, 0), b = Every(438, 2, 1);
  sel->lanes = {{a, 11, 0, 0}, {b, 22, 1, 0}, {b, 23, 1, 1}};  // lane 2: lane 1's second copy
  s.selection = sel;
  CheckChain(s, {{2, 8, 3, {{5}}}}, 3, 8);
  CheckChain(s, {{2, 8, 3, {{5, 3}}}, {3, 4, 2, {{6}}}}, 1, 8);
}

TEST(ElasticPlan, SameShapeNeedsNoNewPass) {
  // Resuming at the same shape continues the pass itself (start batch k); the elastic
  // path is only needed when the shape changes. Both deliver the same cells.
  const Case s = Files();
  Cells tail_same, tail_elastic;
  for (int r = 0; r < 2; ++r) {
    const EpochPlan p = Plan(s, s.config, r, 2, {});
    Cells consumed;
    Take(p, {5}, &consumed);
    Cells all;
    Take(p, {p.num_batches()}, &all);
    for (const auto& [cell, n] : all) {
      const int left = n - (consumed.count(cell) ? consumed.at(cell) : 0);
      if (left > 0) tail_same[cell] += left;
    }
    const EpochPlan q = Plan(s, s.config, r, 2, {{2, 8, 3, {{5}}}});
    Take(q, {q.num_batches()}, &tail_elastic);
  }
  std::vector<int64_t> a, b;
  for (const auto& [cell, n] : tail_same) a.push_back(cell.second);
  for (const auto& [cell, n] : tail_elastic) b.push_back(cell.second);
  EXPECT_EQ(a, b);
}

TEST(ElasticPlan, RejectsBadPasses) {
  const Case s = Files();
  const std::vector<std::vector<InterruptedPass>> bad = {
      {{0, 8, 3, {{1}}}},            // world size 0
      {{2, 0, 3, {{1}}}},            // batch size 0
      {{2, 8, 3, {{1}, {1}, {1}}}},  // 3 rank lists for 2 ranks
      {{2, 8, 3, {{}}}},             // no entries
      {{2, 8, 3, {{1000}}}},         // beyond the pass's batches
      {{2, 8, 3, {{-1}}}},
  };
  for (const auto& earlier : bad) {
    auto r = EpochPlan::Make(s.sizes, s.config, 5, 0, 2, {}, nullptr, earlier);
    EXPECT_FALSE(r.ok());
  }
}

}  // namespace
}  // namespace cellfeed
