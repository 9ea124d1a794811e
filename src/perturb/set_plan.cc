// One split's epoch of cell sets, for one rank: random access to every batch.
//
// Sets: group g (n cells) makes k sets per epoch (ceil(n/S) when every cell comes once).
// Set j of g takes positions [j*S, (j+1)*S) of the group's cells in an order permuted
// per (seed, epoch, group, pass) by a keyed Feistel permutation; positions past the n
// cells (the last set of "every cell once") are padding, drawn with replacement from the
// group; with k sets declared, positions wrap into further passes, each another order.
// All sets of the epoch are permuted (seed, epoch, split), cut into world_size equal
// contiguous slices (wrapping past the end, so every rank has the same number of sets)
// and each slice into batches of sets_per_batch sets.
//
// Controls: every perturbed cell takes one control from its pool. Per epoch (default):
// a set's draws from one pool are without replacement while the pool lasts (a sparse
// Fisher-Yates over the pool, keyed by the set), then with replacement, marked as
// repeats. Fixed: each perturbed cell keeps the control keyed by its row for the run.
#include <algorithm>
#include <unordered_map>

#include "cellfeed/perturb.h"
#include "plan/block_permutation.h"
#include "plan/rng.h"

namespace cellfeed {

namespace {

using plan_internal::BlockPermutation;
using plan_internal::MixCombine;
using plan_internal::Xoshiro256;

inline constexpr uint64_t kTagSetOrder = 0x5365744F72646572ULL;      // "SetOrder"
inline constexpr uint64_t kTagSetCells = 0x53657443656C6C73ULL;      // "SetCells"
inline constexpr uint64_t kTagSetPadding = 0x5365745061644472ULL;    // "SetPadDr"
inline constexpr uint64_t kTagControls = 0x436F6E74726F6C73ULL;      // "Controls"
inline constexpr uint64_t kTagFixedControl = 0x4669784374726C73ULL;  // "FixCtrls"

uint64_t Key(uint64_t tag, uint64_t seed, uint64_t a, uint64_t b = 0, uint64_t c = 0) {
  return MixCombine(MixCombine(MixCombine(MixCombine(tag, seed), a), b), c);
}

// Marks entries equal to an earlier entry of [begin, begin + len).
void MarkDuplicates(const std::vector<int64_t>& rows, size_t begin, size_t len,
                    std::vector<uint8_t>* repeat) {
  std::vector<std::pair<int64_t, size_t>> v(len);
  for (size_t p = 0; p < len; ++p) v[p] = {rows[begin + p], p};
  std::sort(v.begin(), v.end());
  for (size_t p = 1; p < len; ++p)
    if (v[p].first == v[p - 1].first) (*repeat)[begin + v[p].second] = 1;
}

}  // namespace

Result<SetEpochPlan> SetIndex::Plan(int split, int64_t epoch, int rank, int world_size) const {
  if (split < 0 || split > 2)
    return Status::Invalid("split must be 0 (train), 1 (val) or 2 (test)");
  if (world_size < 1 || rank < 0 || rank >= world_size)
    return Status::Invalid("rank " + std::to_string(rank) + " of world_size " +
                           std::to_string(world_size));
  SetEpochPlan p;
  p.index_ = this;
  p.keep_ = shared_from_this();
  p.split_ = static_cast<int8_t>(split);
  p.epoch_ = epoch;
  p.rank_ = rank;
  p.world_size_ = world_size;
  p.set_offsets_.push_back(0);
  for (size_t g = 0; g < groups_.size(); ++g) {
    if (groups_[g].split != split) continue;
    const int64_t k = SetsOfGroup(static_cast<int32_t>(g));
    if (k == 0) continue;
    p.groups_.push_back(static_cast<int32_t>(g));
    p.set_offsets_.push_back(p.set_offsets_.back() + k);
  }
  p.total_sets_ = p.set_offsets_.back();
  p.order_key_ =
      Key(kTagSetOrder, spec_.seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(split));
  const int64_t B = spec_.sets_per_batch;
  p.rank_sets_ = p.total_sets_ == 0 ? 0 : (p.total_sets_ + world_size - 1) / world_size;
  p.num_batches_ = spec_.drop_last ? p.rank_sets_ / B : (p.rank_sets_ + B - 1) / B;
  return p;
}

void SetEpochPlan::SetAt(int64_t position, int32_t* group, int64_t* set) const {
  BlockPermutation perm(static_cast<uint64_t>(total_sets_), order_key_);
  const int64_t s = static_cast<int64_t>(perm.Forward(static_cast<uint64_t>(position)));
  const size_t i = static_cast<size_t>(
      std::upper_bound(set_offsets_.begin(), set_offsets_.end(), s) - set_offsets_.begin() - 1);
  *group = groups_[i];
  *set = s - set_offsets_[i];
}

void SetEpochPlan::FillSet(int32_t g, int64_t j, SetBatchPlan* out) const {
  const SetIndex& ix = *index_;
  const PerturbSpec& spec = ix.spec_;
  const SetGroup& group = ix.groups_[static_cast<size_t>(g)];
  const int64_t S = spec.set_size, n = group.size();
  const uint64_t seed = spec.seed, ep = static_cast<uint64_t>(epoch_),
                 gid = static_cast<uint64_t>(g);
  const size_t base = out->pert_rows.size();
  std::vector<int32_t> pools(static_cast<size_t>(S));
  Xoshiro256 pad(Key(kTagSetPadding, seed, ep, gid, static_cast<uint64_t>(j)));
  int64_t pass = -1;
  std::unique_ptr<BlockPermutation> perm;
  for (int64_t p = 0; p < S; ++p) {
    const int64_t q = j * S + p;
    int64_t idx;
    uint8_t repeat = 0;
    if (spec.sets_per_group == 0 && q >= n) {
      idx = static_cast<int64_t>(pad.Below(static_cast<uint64_t>(n)));
      repeat = 1;
    } else {
      if (q / n != pass) {
        pass = q / n;
        perm = std::make_unique<BlockPermutation>(
            static_cast<uint64_t>(n),
            Key(kTagSetCells, seed, ep, gid, static_cast<uint64_t>(pass)));
      }
      idx = static_cast<int64_t>(perm->Forward(static_cast<uint64_t>(q % n)));
    }
    out->pert_rows.push_back(ix.group_rows_[static_cast<size_t>(group.begin + idx)]);
    out->pert_repeat.push_back(repeat);
    pools[static_cast<size_t>(p)] = ix.cell_pools_[static_cast<size_t>(group.begin + idx)];
  }
  if (spec.sets_per_group > 0)
    MarkDuplicates(out->pert_rows, base, static_cast<size_t>(S), &out->pert_repeat);

  // Controls.
  if (spec.controls_fixed) {
    for (int64_t p = 0; p < S; ++p) {
      const ControlPool& pool = ix.pools_[static_cast<size_t>(pools[static_cast<size_t>(p)])];
      Xoshiro256 r(Key(kTagFixedControl, seed,
                       static_cast<uint64_t>(out->pert_rows[base + static_cast<size_t>(p)])));
      const int64_t x = static_cast<int64_t>(r.Below(static_cast<uint64_t>(pool.end - pool.begin)));
      out->ctrl_rows.push_back(ix.pool_rows_[static_cast<size_t>(pool.begin + x)]);
      out->ctrl_repeat.push_back(0);
      out->ctrl_level.push_back(static_cast<int8_t>(pool.level));
    }
    MarkDuplicates(out->ctrl_rows, base, static_cast<size_t>(S), &out->ctrl_repeat);
    return;
  }
  // Per pool: draws so far, and the sparse Fisher-Yates swaps (position -> value).
  struct Draws {
    int64_t taken = 0;
    std::unordered_map<int64_t, int64_t> swapped;
  };
  std::unordered_map<int32_t, Draws> draws;
  Xoshiro256 rng(Key(kTagControls, seed, ep, gid, static_cast<uint64_t>(j)));
  for (int64_t p = 0; p < S; ++p) {
    const int32_t pid = pools[static_cast<size_t>(p)];
    const ControlPool& pool = ix.pools_[static_cast<size_t>(pid)];
    const int64_t m = pool.end - pool.begin;
    Draws& d = draws[pid];
    int64_t x;
    uint8_t repeat = 0;
    if (d.taken < m) {
      const int64_t t = d.taken;
      const int64_t k = t + static_cast<int64_t>(rng.Below(static_cast<uint64_t>(m - t)));
      auto at = [&](int64_t i) {
        auto it = d.swapped.find(i);
        return it == d.swapped.end() ? i : it->second;
      };
      x = at(k);
      d.swapped[k] = at(t);
    } else {
      x = static_cast<int64_t>(rng.Below(static_cast<uint64_t>(m)));
      repeat = 1;
    }
    ++d.taken;
    out->ctrl_rows.push_back(ix.pool_rows_[static_cast<size_t>(pool.begin + x)]);
    out->ctrl_repeat.push_back(repeat);
    out->ctrl_level.push_back(static_cast<int8_t>(pool.level));
  }
  // Pools of different levels overlap (a plate's controls are also its context's).
  MarkDuplicates(out->ctrl_rows, base, static_cast<size_t>(S), &out->ctrl_repeat);
}

SetBatchPlan SetEpochPlan::GetBatch(int64_t b) const {
  SetBatchPlan out;
  out.index = b;
  const int64_t B = index_->spec_.sets_per_batch;
  const int64_t first = b * B, last = std::min(rank_sets_, first + B);
  out.n_sets = std::max<int64_t>(0, last - first);
  const size_t cells = static_cast<size_t>(out.n_sets * index_->spec_.set_size);
  out.pert_rows.reserve(cells);
  out.pert_repeat.reserve(cells);
  out.ctrl_rows.reserve(cells);
  out.ctrl_repeat.reserve(cells);
  out.ctrl_level.reserve(cells);
  for (int64_t k = first; k < last; ++k) {
    const int64_t position = (static_cast<int64_t>(rank_) * rank_sets_ + k) % total_sets_;
    int32_t g;
    int64_t j;
    SetAt(position, &g, &j);
    out.groups.push_back(g);
    out.sets.push_back(j);
    FillSet(g, j, &out);
  }
  return out;
}

std::vector<int64_t> SetEpochPlan::SetsPerLevel() const {
  std::vector<int64_t> counts(index_->spec_.match_levels.size(), 0);
  SetBatchPlan scratch;
  for (size_t i = 0; i < groups_.size(); ++i) {
    for (int64_t j = 0; j < set_offsets_[i + 1] - set_offsets_[i]; ++j) {
      scratch.pert_rows.clear();
      scratch.pert_repeat.clear();
      scratch.ctrl_rows.clear();
      scratch.ctrl_repeat.clear();
      scratch.ctrl_level.clear();
      FillSet(groups_[i], j, &scratch);
      const int8_t worst = *std::max_element(scratch.ctrl_level.begin(), scratch.ctrl_level.end());
      ++counts[static_cast<size_t>(worst)];
    }
  }
  return counts;
}

}  // namespace cellfeed
