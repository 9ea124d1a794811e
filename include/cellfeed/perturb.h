// Cell sets for perturbation-response training: groups of cells that share a context
// (cell line, cell type), a perturbation condition and optionally a batch, cut into sets
// of S cells, each paired with a set of S control cells of the same context matched on
// declared keys (docs/PERTURBATION.md).
//
// Pure selection and planning, no I/O: the caller reads obs and hands in one int32 code
// per cell and column. SetIndex::Make groups the cells, assigns splits, builds the
// control pools and resolves each perturbed cell's pool (its first matching fallback
// level) once; every declaration that cannot be met is an error here. SetEpochPlan is
// then one (split, epoch, rank)'s sequence of batches, random access: batch b's sets,
// their cells and controls are computed from counter-based keys of (seed, epoch, group,
// set, purpose), so they do not depend on threads, workers or resume points.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "cellfeed/status.h"

namespace cellfeed {

// Per eligible cell (all spans of equal length, borrowed for the duration of Make).
struct PerturbCells {
  std::span<const int64_t> rows;       // global rows, strictly ascending
  std::span<const int32_t> context;    // context id >= 0
  std::span<const int32_t> condition;  // condition id >= 0 (distinct parsed conditions)
  std::span<const uint8_t> control;    // 1 = a control cell
  std::span<const int32_t> batch;      // batch id >= 0; empty = no batch column
  std::span<const int8_t> split;       // 0 train, 1 val, 2 test; empty = all train
  // Columns that control matching may use (plate, ...): codes >= 0, -1 = missing (a
  // missing key never matches at a level that uses that column).
  std::vector<std::span<const int32_t>> match;
};

enum class HeldOutControls : uint8_t {
  kWithContext,  // controls of a held-out context are held out with it (default)
  kShared,       // they stay in train (as cell-load does) and also serve their context's split
};

struct PerturbSpec {
  int64_t set_size = 64;        // S
  int64_t sets_per_batch = 16;  // B
  int64_t min_cells = 1;        // groups with fewer cells are skipped (reported)
  int64_t sets_per_group = 0;   // 0: every cell once per epoch (ceil(n/S) sets); k: k sets
  bool group_by_batch = false;  // groups are (context, condition, batch)
  bool control_sets = true;     // control cells also form sets (condition = the control)
  // Fallback levels of control matching, finest first; each lists indices into
  // PerturbCells::match. The context always matches too; {} = the context alone.
  std::vector<std::vector<int32_t>> match_levels = {{}};
  bool controls_fixed = false;     // one control per perturbed cell for the run
  bool skip_uncontrolled = false;  // cells without controls at any level: skipped, not an error
  HeldOutControls held_out_controls = HeldOutControls::kWithContext;
  // Sets draw controls of their own split only (default), or also of the splits below
  // it (val sets from train; test sets from val and train). Training sets never draw
  // held-out controls either way.
  bool controls_from_lower_splits = false;
  // Held-out rules (0 = not held out by this rule, 1 val, 2 test); a cell goes to the
  // highest split any rule gives it (test over val over train).
  std::vector<int8_t> context_split;               // by context id (zero-shot contexts)
  std::vector<int8_t> condition_split;             // by condition id (unseen perturbations)
  std::vector<std::array<int32_t, 3>> pair_split;  // (context, condition, split): few-shot
  bool drop_last = false;                          // a rank's last short batch is dropped
  uint64_t seed = 0;
  // Names for error messages and reports (index = id).
  std::vector<std::string> context_names, condition_names, match_names;
};

// Cells of one (split, context, condition[, batch]) group: group_rows()[begin, end).
struct SetGroup {
  int8_t split = 0;
  bool control = false;
  int32_t context = 0, condition = 0, batch = -1;
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

// Control cells of one (pool family, context, level key): pool_rows()[begin, end).
struct ControlPool {
  int64_t begin = 0, end = 0;
  int32_t level = 0;
};

// What one batch holds: n_sets sets of S perturbed cells and S matched controls,
// position [i * S + p] for set i, cell p.
struct SetBatchPlan {
  int64_t index = 0;
  int64_t n_sets = 0;
  std::vector<int32_t> groups;       // SetIndex::groups() index of each set
  std::vector<int64_t> sets;         // each set's number within its group this epoch
  std::vector<int64_t> pert_rows;    // global rows
  std::vector<uint8_t> pert_repeat;  // 1 = padding draw, or already earlier in the set
  std::vector<int64_t> ctrl_rows;
  std::vector<uint8_t> ctrl_repeat;  // 1 = already earlier in the set's controls
  std::vector<int8_t> ctrl_level;    // fallback level of each control
};

class SetIndex;

class SetEpochPlan {
 public:
  int64_t num_batches() const { return num_batches_; }
  int64_t num_sets() const { return total_sets_; }  // the epoch's sets, all ranks
  SetBatchPlan GetBatch(int64_t b) const;           // 0 <= b < num_batches()
  // Sets of the whole epoch (all ranks, before padding) by the coarsest fallback level
  // any of their controls used.
  std::vector<int64_t> SetsPerLevel() const;

 private:
  friend class SetIndex;
  const SetIndex* index_ = nullptr;
  std::shared_ptr<const SetIndex> keep_;
  int8_t split_ = 0;
  int64_t epoch_ = 0;
  int rank_ = 0, world_size_ = 1;
  std::vector<int32_t> groups_;       // the split's groups that make sets
  std::vector<int64_t> set_offsets_;  // first epoch set of each of groups_, + total
  int64_t total_sets_ = 0, rank_sets_ = 0, num_batches_ = 0;
  uint64_t order_key_ = 0;
  void SetAt(int64_t position, int32_t* group, int64_t* set) const;
  void FillSet(int32_t group, int64_t set, SetBatchPlan* out) const;
};

class SetIndex : public std::enable_shared_from_this<SetIndex> {
 public:
  static Result<std::shared_ptr<const SetIndex>> Make(const PerturbCells& cells, PerturbSpec spec);

  const PerturbSpec& spec() const { return spec_; }
  const std::vector<SetGroup>& groups() const { return groups_; }
  const std::vector<int64_t>& group_rows() const { return group_rows_; }
  // The control pool of each cell of group_rows() (-1 for control cells with no pool).
  const std::vector<int32_t>& cell_pools() const { return cell_pools_; }
  const std::vector<ControlPool>& pools() const { return pools_; }
  const std::vector<int64_t>& pool_rows() const { return pool_rows_; }
  // The split of each input cell (PerturbCells order), after every rule.
  const std::vector<int8_t>& cell_splits() const { return cell_splits_; }

  // What was left out, per split: groups below min_cells and their cells; cells with
  // no controls at any level (skip_uncontrolled); cells per fallback level.
  struct Counts {
    std::array<int64_t, 3> small_groups{}, small_group_cells{}, uncontrolled_cells{};
    std::vector<std::array<int64_t, 3>> cells_per_level;  // [level][split]
    std::vector<std::array<int64_t, 3>> uncontrolled_per_context;  // [context][split]
  };
  const Counts& counts() const { return counts_; }

  // The batches of one split's epoch for one rank. Every rank gets the same number of
  // batches (the set sequence wraps around); a set is never split across ranks.
  Result<SetEpochPlan> Plan(int split, int64_t epoch, int rank, int world_size) const;

  int64_t SetsOfGroup(int32_t g) const;  // sets per epoch (0 = skipped)

 private:
  friend class SetEpochPlan;
  SetIndex() = default;
  PerturbSpec spec_;
  std::vector<SetGroup> groups_;
  std::vector<int64_t> group_rows_;
  std::vector<int32_t> cell_pools_;
  std::vector<ControlPool> pools_;
  std::vector<int64_t> pool_rows_;
  std::vector<int8_t> cell_splits_;
  Counts counts_;
};

}  // namespace cellfeed
