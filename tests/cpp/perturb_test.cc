// Tests of the cell-set planner (include/cellfeed/perturb.h) on small code arrays whose
// expected groups, splits and control pools are written out by hand.
#include "cellfeed/perturb.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <vector>

namespace cellfeed {
namespace {

// 3 contexts x (control + 2 conditions), 2 plates; context 2 has controls on plate 0 only.
struct Toy {
  std::vector<int64_t> rows;
  std::vector<int32_t> context, condition, plate;
  std::vector<uint8_t> control;
  PerturbCells Cells() const {
    PerturbCells c;
    c.rows = rows;
    c.context = context;
    c.condition = condition;
    c.control = control;
    c.match = {std::span<const int32_t>(plate)};
    return c;
  }
};

Toy MakeToy() {
  Toy t;
  int64_t row = 0;
  for (int32_t plate = 0; plate < 2; ++plate)
    for (int32_t ctx = 0; ctx < 3; ++ctx)
      for (int32_t cond = 0; cond < 3; ++cond) {
        if (cond == 0 && ctx == 2 && plate == 1) continue;  // no controls there
        const int n = 5 + 3 * ctx + cond;
        for (int i = 0; i < n; ++i) {
          t.rows.push_back(row++);
          t.context.push_back(ctx);
          t.condition.push_back(cond);
          t.plate.push_back(plate);
          t.control.push_back(cond == 0 ? 1 : 0);
        }
      }
  return t;
}

PerturbSpec Spec() {
  PerturbSpec s;
  s.set_size = 4;
  s.sets_per_batch = 3;
  s.match_levels = {{0}, {}};
  s.seed = 7;
  return s;
}

std::vector<SetBatchPlan> All(const SetIndex& ix, int split, int64_t epoch, int rank = 0,
                              int world = 1) {
  auto p = ix.Plan(split, epoch, rank, world);
  EXPECT_TRUE(p.ok()) << p.status().message();
  std::vector<SetBatchPlan> out;
  for (int64_t b = 0; b < p.value().num_batches(); ++b) out.push_back(p.value().GetBatch(b));
  return out;
}

TEST(SetIndex, GroupsControlsAndFallback) {
  Toy t = MakeToy();
  auto r = SetIndex::Make(t.Cells(), Spec());
  ASSERT_TRUE(r.ok()) << r.status().message();
  const SetIndex& ix = *r.value();
  // 3 contexts x 3 conditions (control groups too), all train.
  EXPECT_EQ(ix.groups().size(), 9u);
  std::map<int64_t, size_t> where;
  for (size_t i = 0; i < t.rows.size(); ++i) where[t.rows[i]] = i;
  std::set<int64_t> seen;
  for (const SetBatchPlan& b : All(ix, 0, 0)) {
    for (int64_t s = 0; s < b.n_sets; ++s) {
      const SetGroup& g = ix.groups()[b.groups[s]];
      for (int p = 0; p < 4; ++p) {
        const size_t k = s * 4 + p;
        const size_t pc = where[b.pert_rows[k]], cc = where[b.ctrl_rows[k]];
        EXPECT_EQ(t.context[pc], g.context);
        EXPECT_EQ(t.condition[pc], g.condition);
        EXPECT_EQ(t.control[cc], 1);
        EXPECT_EQ(t.context[cc], t.context[pc]);
        const bool plate_has = !(t.context[pc] == 2 && t.plate[pc] == 1);
        EXPECT_EQ(b.ctrl_level[k], plate_has ? 0 : 1);
        if (plate_has) {
          EXPECT_EQ(t.plate[cc], t.plate[pc]);
        }
        if (!b.pert_repeat[k]) {
          EXPECT_TRUE(seen.insert(b.pert_rows[k]).second);
        }
      }
    }
  }
  EXPECT_EQ(seen.size(), t.rows.size());  // every cell once
  // fallback counts: perturbed cells of context 2 on plate 1
  EXPECT_EQ(ix.counts().cells_per_level[1][0], (5 + 6 + 1) + (5 + 6 + 2));
}

TEST(SetIndex, NoFallbackIsAnError) {
  Toy t = MakeToy();
  PerturbSpec s = Spec();
  s.match_levels = {{0}};
  s.context_names = {"A", "B", "C"};
  auto r = SetIndex::Make(t.Cells(), s);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("context 'C'"), std::string::npos) << r.status().message();
  s.skip_uncontrolled = true;
  auto ok = SetIndex::Make(t.Cells(), s);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok.value()->counts().uncontrolled_cells[0], (5 + 6 + 1) + (5 + 6 + 2));
}

TEST(SetIndex, HeldOutContextTakesItsControls) {
  Toy t = MakeToy();
  PerturbSpec s = Spec();
  s.context_split = {0, 1, 0};  // context 1 is val
  auto r = SetIndex::Make(t.Cells(), s);
  ASSERT_TRUE(r.ok());
  for (const SetBatchPlan& b : All(*r.value(), 0, 0))
    for (size_t k = 0; k < b.pert_rows.size(); ++k) {
      EXPECT_NE(t.context[b.pert_rows[k]], 1);
      EXPECT_NE(t.context[b.ctrl_rows[k]], 1);
    }
  int val_sets = 0;
  for (const SetBatchPlan& b : All(*r.value(), 1, 0)) {
    val_sets += b.n_sets;
    for (size_t k = 0; k < b.pert_rows.size(); ++k) EXPECT_EQ(t.context[b.ctrl_rows[k]], 1);
  }
  EXPECT_GT(val_sets, 0);
}

TEST(SetIndex, ControlsAcrossSplitsOnlyWhenDeclared) {
  Toy t = MakeToy();
  PerturbSpec s = Spec();
  s.pair_split = {{0, 1, 1}};  // condition 1 of context 0 is val (few-shot)
  s.match_levels = {{}};
  auto strict = SetIndex::Make(t.Cells(), s);
  ASSERT_FALSE(strict.ok());  // context 0 has no val controls
  EXPECT_NE(strict.status().message().find("controls_from_lower_splits"), std::string::npos);
  s.controls_from_lower_splits = true;
  auto r = SetIndex::Make(t.Cells(), s);
  ASSERT_TRUE(r.ok()) << r.status().message();
  int val_sets = 0;
  for (const SetBatchPlan& b : All(*r.value(), 1, 0)) {
    val_sets += static_cast<int>(b.n_sets);
    for (size_t k = 0; k < b.pert_rows.size(); ++k) {
      EXPECT_EQ(t.context[b.pert_rows[k]], 0);
      EXPECT_EQ(t.condition[b.pert_rows[k]], 1);
      EXPECT_EQ(t.context[b.ctrl_rows[k]], 0);
      EXPECT_EQ(t.control[b.ctrl_rows[k]], 1);
    }
  }
  EXPECT_EQ(val_sets, 3);  // (context 0, condition 1): 6 cells on each plate, sets of 4
  // shared controls of a zero-shot context: train control sets, and its val sets' controls
  PerturbSpec sh = Spec();
  sh.match_levels = {{}};
  sh.context_split = {0, 1, 0};
  sh.held_out_controls = HeldOutControls::kShared;
  auto shared = SetIndex::Make(t.Cells(), sh);
  ASSERT_TRUE(shared.ok()) << shared.status().message();
  bool trains_c1_controls = false;
  for (const SetBatchPlan& b : All(*shared.value(), 0, 0))
    for (size_t k = 0; k < b.pert_rows.size(); ++k) {
      if (t.context[b.pert_rows[k]] == 1) {
        EXPECT_EQ(t.control[b.pert_rows[k]], 1);
        trains_c1_controls = true;
      }
    }
  EXPECT_TRUE(trains_c1_controls);
  for (const SetBatchPlan& b : All(*shared.value(), 1, 0))
    for (size_t k = 0; k < b.pert_rows.size(); ++k) EXPECT_EQ(t.context[b.ctrl_rows[k]], 1);
}

TEST(SetEpochPlan, RanksShareTheEpochAndBatchesAreRandomAccess) {
  Toy t = MakeToy();
  auto r = SetIndex::Make(t.Cells(), Spec());
  ASSERT_TRUE(r.ok());
  std::multiset<std::pair<int32_t, int64_t>> whole, parts;
  for (const SetBatchPlan& b : All(*r.value(), 0, 3))
    for (int64_t s = 0; s < b.n_sets; ++s) whole.insert({b.groups[s], b.sets[s]});
  std::set<int64_t> counts;
  for (int rank = 0; rank < 4; ++rank) {
    auto bs = All(*r.value(), 0, 3, rank, 4);
    counts.insert(static_cast<int64_t>(bs.size()));
    for (const SetBatchPlan& b : bs)
      for (int64_t s = 0; s < b.n_sets; ++s) parts.insert({b.groups[s], b.sets[s]});
  }
  EXPECT_EQ(counts.size(), 1u);
  using SetIds = std::set<std::pair<int32_t, int64_t>>;
  EXPECT_EQ(SetIds(parts.begin(), parts.end()), SetIds(whole.begin(), whole.end()));
  EXPECT_LT(parts.size() - whole.size(), 4u);
  auto plan = r.value()->Plan(0, 3, 0, 1);
  const SetBatchPlan again = plan.value().GetBatch(2);
  EXPECT_EQ(again.pert_rows, All(*r.value(), 0, 3)[2].pert_rows);
  EXPECT_EQ(again.ctrl_rows, All(*r.value(), 0, 3)[2].ctrl_rows);
  EXPECT_NE(All(*r.value(), 0, 4)[0].pert_rows, All(*r.value(), 0, 3)[0].pert_rows);
}

TEST(SetIndex, RejectsBadInput) {
  Toy t = MakeToy();
  PerturbSpec s = Spec();
  s.set_size = 0;
  EXPECT_FALSE(SetIndex::Make(t.Cells(), s).ok());
  PerturbSpec bad_rule = Spec();
  bad_rule.context_split = {0, 5, 0};
  EXPECT_FALSE(SetIndex::Make(t.Cells(), bad_rule).ok());
  std::swap(t.rows[0], t.rows[1]);
  EXPECT_FALSE(SetIndex::Make(t.Cells(), Spec()).ok());
}

}  // namespace
}  // namespace cellfeed
