// SetIndex::Make: groups, splits and control pools, built once in O(n) passes.
//
// Each cell's split is the highest any rule gives it (test > val > train): the corpus's
// split of the cell, its context's (zero-shot), and for perturbed cells its condition's
// (unseen) and its (context, condition) pair's (few-shot). Controls follow only their
// context's rule, and only when held-out controls go with their context.
//
// Control pools: one per (family, level, context, level key values). Family f holds
// the controls a set of split f may use: controls of split f, and when declared also of
// the splits below it (train 0 < val 1 < test 2: a held-out perturbation compared with
// its context's training controls); shared controls of a held-out context (kShared) are
// train controls that also serve their context's split. A training set never sees a
// held-out control. Each perturbed cell takes the pool of the first level whose key it
// shares with some control.
//
// Keys are exact mixed-radix integers over the codes (no hash collisions); dense ids come
// from a table (small key spaces) or a hash map. Groups are numbered in sorted key order
// and their cells kept in row order, so ids do not depend on anything but the input.
#include <algorithm>
#include <numeric>
#include <unordered_map>

#include "cellfeed/perturb.h"

namespace cellfeed {

namespace {

constexpr const char* kSplitNames[3] = {"train", "val", "test"};

// Mixed-radix encoder: Add(value, cardinality) appends one digit; Fits() checks first
// that the cardinalities' product fits 62 bits.
class RadixKey {
 public:
  void Add(uint64_t v, uint64_t card) { key_ = key_ * card + v; }
  uint64_t key() const { return key_; }

  // The number of distinct keys of these cardinalities; 0 when above 2^62.
  static uint64_t Space(const std::vector<uint64_t>& cards) {
    unsigned __int128 r = 1;
    for (uint64_t c : cards) {
      r *= c;
      if (r > (static_cast<unsigned __int128>(1) << 62)) return 0;
    }
    return static_cast<uint64_t>(r);
  }

 private:
  uint64_t key_ = 0;
};

// Ids of keys: the id a key got when first seen. A key space of up to 2^22 keys is a
// table (one array access per cell: cells of many contexts interleave in multiplexed
// wells, so a cache of the last key rarely hits); a larger one a hash map with a
// one-entry cache.
class KeyIds {
 public:
  explicit KeyIds(uint64_t space) {
    if (space <= (uint64_t{1} << 22)) table_.assign(space, -1);
  }
  // The key's id; a new key gets `fresh` (the caller's next id).
  int32_t GetOr(uint64_t key, int32_t fresh) {
    if (!table_.empty()) {
      int32_t& id = table_[key];
      if (id < 0) {
        id = fresh;
        keys_.push_back(key);
      }
      return id;
    }
    if (key == last_key_ && last_id_ >= 0) return last_id_;
    auto [it, inserted] = ids_.try_emplace(key, fresh);
    if (inserted) keys_.push_back(key);
    last_key_ = key;
    last_id_ = it->second;
    return last_id_;
  }
  // -1 when absent (lookups only).
  int32_t Find(uint64_t key) {
    if (!table_.empty()) return table_[key];
    if (key == last_key_ && last_id_ >= 0) return last_id_;
    auto it = ids_.find(key);
    if (it == ids_.end()) return -1;
    last_key_ = key;
    last_id_ = it->second;
    return last_id_;
  }
  const std::vector<uint64_t>& keys() const { return keys_; }  // in first-seen order

 private:
  std::vector<int32_t> table_;
  std::unordered_map<uint64_t, int32_t> ids_;
  std::vector<uint64_t> keys_;
  uint64_t last_key_ = 0;
  int32_t last_id_ = -1;
};

int32_t MaxPlusOne(std::span<const int32_t> v) {
  int32_t m = 0;
  for (int32_t x : v) m = std::max(m, x + 1);
  return m;
}

std::string NameOf(const std::vector<std::string>& names, int32_t id) {
  if (id >= 0 && static_cast<size_t>(id) < names.size()) return "'" + names[id] + "'";
  return "#" + std::to_string(id);
}

}  // namespace

Result<std::shared_ptr<const SetIndex>> SetIndex::Make(const PerturbCells& cells,
                                                       PerturbSpec spec) {
  const size_t n = cells.rows.size();
  if (spec.set_size < 1)
    return Status::Invalid("set_size must be >= 1, got " + std::to_string(spec.set_size));
  if (spec.sets_per_batch < 1)
    return Status::Invalid("sets_per_batch must be >= 1, got " +
                           std::to_string(spec.sets_per_batch));
  if (spec.min_cells < 1) return Status::Invalid("min_cells must be >= 1");
  if (spec.sets_per_group < 0)
    return Status::Invalid("sets_per_group must be >= 0 (0 = every cell once)");
  if (spec.match_levels.empty())
    return Status::Invalid("control matching needs at least one level");
  if (cells.context.size() != n || cells.condition.size() != n || cells.control.size() != n ||
      (!cells.batch.empty() && cells.batch.size() != n) ||
      (!cells.split.empty() && cells.split.size() != n))
    return Status::Invalid("perturbation codes: every per-cell array needs one entry per row");
  for (const auto& m : cells.match)
    if (m.size() != n)
      return Status::Invalid("perturbation codes: a match column has the wrong length");
  if (spec.group_by_batch && cells.batch.empty())
    return Status::Invalid("grouping by batch needs a batch column");
  for (const auto& level : spec.match_levels)
    for (int32_t c : level)
      if (c < 0 || static_cast<size_t>(c) >= cells.match.size())
        return Status::Invalid("a control matching level names match column " + std::to_string(c) +
                               " of " + std::to_string(cells.match.size()));
  int32_t max_ctx = 0, max_cond = 0, max_batch = 0;  // ids + 1
  for (size_t i = 0; i < n; ++i) {
    if (i > 0 && cells.rows[i] <= cells.rows[i - 1])
      return Status::Invalid("perturbation codes: rows must be strictly ascending");
    if (cells.context[i] < 0 || cells.condition[i] < 0 ||
        (!cells.batch.empty() && cells.batch[i] < 0))
      return Status::Invalid("perturbation codes: negative context, condition or batch id at row " +
                             std::to_string(cells.rows[i]));
    if (!cells.split.empty() && (cells.split[i] < 0 || cells.split[i] > 2))
      return Status::Invalid("perturbation codes: split must be 0, 1 or 2");
    max_ctx = std::max(max_ctx, cells.context[i] + 1);
    max_cond = std::max(max_cond, cells.condition[i] + 1);
    if (!cells.batch.empty()) max_batch = std::max(max_batch, cells.batch[i] + 1);
  }

  const uint64_t n_ctx = static_cast<uint64_t>(std::max<int32_t>(1, max_ctx));
  const uint64_t n_cond = static_cast<uint64_t>(std::max<int32_t>(1, max_cond));
  const uint64_t n_batch = static_cast<uint64_t>(std::max<int32_t>(1, max_batch));
  std::vector<uint64_t> match_cards;
  for (const auto& m : cells.match)
    match_cards.push_back(static_cast<uint64_t>(std::max<int32_t>(1, MaxPlusOne(m))));
  const uint64_t n_levels = spec.match_levels.size();
  const uint64_t group_space =
      RadixKey::Space({3, n_ctx, n_cond, spec.group_by_batch ? n_batch + 1 : 1});
  if (group_space == 0) return Status::Invalid("too many distinct contexts x conditions x batches");
  std::vector<KeyIds> pool_ids;
  for (const auto& level : spec.match_levels) {
    std::vector<uint64_t> cards{3, n_ctx};
    for (int32_t c : level) cards.push_back(match_cards[c]);
    const uint64_t space = RadixKey::Space(cards);
    if (space == 0) return Status::Invalid("too many distinct control matching key values");
    pool_ids.emplace_back(space);  // levels have keys of different lengths: one map each
  }

  for (const auto* v : {&spec.context_split, &spec.condition_split})
    for (int8_t x : *v)
      if (x < 0 || x > 2) return Status::Invalid("a held-out rule's split must be 0, 1 or 2");

  // Pair rules, keyed by (context, condition).
  std::unordered_map<uint64_t, int8_t> pair_rule;
  for (const auto& [ctx, cond, s] : spec.pair_split) {
    if (s < 0 || s > 2) return Status::Invalid("a held-out pair's split must be 0, 1 or 2");
    int8_t& r = pair_rule[(static_cast<uint64_t>(ctx) << 32) | static_cast<uint32_t>(cond)];
    r = std::max<int8_t>(r, static_cast<int8_t>(s));
  }
  auto rule = [](const std::vector<int8_t>& v, int32_t id) -> int8_t {
    return static_cast<size_t>(id) < v.size() ? v[id] : 0;
  };
  const bool ctx_controls = spec.held_out_controls == HeldOutControls::kWithContext;
  std::vector<int8_t> split(n);
  bool family_needed[3] = {false, false, false};
  for (size_t i = 0; i < n; ++i) {
    int8_t s = cells.split.empty() ? 0 : cells.split[i];
    const int32_t ctx = cells.context[i], cond = cells.condition[i];
    if (!cells.control[i] || ctx_controls) s = std::max(s, rule(spec.context_split, ctx));
    if (!cells.control[i]) {
      s = std::max(s, rule(spec.condition_split, cond));
      if (!pair_rule.empty()) {
        auto it = pair_rule.find((static_cast<uint64_t>(ctx) << 32) | static_cast<uint32_t>(cond));
        if (it != pair_rule.end()) s = std::max(s, it->second);
      }
    }
    split[i] = s;
    if (!cells.control[i] || spec.control_sets) family_needed[s] = true;
  }

  auto level_key = [&](size_t i, int family, size_t level, bool* ok) {
    RadixKey k;
    k.Add(static_cast<uint64_t>(family), 3);
    k.Add(static_cast<uint64_t>(cells.context[i]), n_ctx);
    *ok = true;
    for (int32_t c : spec.match_levels[level]) {
      const int32_t v = cells.match[c][i];
      if (v < 0) *ok = false;
      k.Add(static_cast<uint64_t>(std::max(v, 0)), match_cards[c]);
    }
    return k.key();
  };

  auto index = std::shared_ptr<SetIndex>(new SetIndex());
  SetIndex& ix = *index;

  // Control pools: count, then place (rows ascending within each pool).
  std::vector<int64_t> pool_count;
  std::vector<int32_t> entry_pool;  // per (control, family, level) entry, in visit order
  auto visit_controls = [&](auto&& f) {
    for (size_t i = 0; i < n; ++i) {
      if (!cells.control[i]) continue;
      for (int family = 0; family < 3; ++family) {
        if (!family_needed[family]) continue;
        const bool member =
            split[i] == family || (split[i] < family && spec.controls_from_lower_splits) ||
            // shared controls of a held-out context serve its split as well as train
            (!ctx_controls && family > 0 && rule(spec.context_split, cells.context[i]) == family);
        if (!member) continue;
        for (size_t l = 0; l < n_levels; ++l) {
          bool ok;
          const uint64_t key = level_key(i, family, l, &ok);
          if (ok) f(i, key, static_cast<int32_t>(l));
        }
      }
    }
  };
  visit_controls([&](size_t, uint64_t key, int32_t level) {
    const int32_t id =
        pool_ids[static_cast<size_t>(level)].GetOr(key, static_cast<int32_t>(pool_count.size()));
    if (static_cast<size_t>(id) == pool_count.size()) {
      pool_count.push_back(0);
      ix.pools_.push_back(ControlPool{0, 0, level});
    }
    ++pool_count[id];
    entry_pool.push_back(id);
  });
  int64_t acc = 0;
  for (size_t p = 0; p < ix.pools_.size(); ++p) {
    ix.pools_[p].begin = ix.pools_[p].end = acc;
    acc += pool_count[p];
  }
  ix.pool_rows_.resize(static_cast<size_t>(acc));
  {
    size_t e = 0;
    visit_controls([&](size_t i, uint64_t, int32_t) {
      ControlPool& p = ix.pools_[entry_pool[e++]];
      ix.pool_rows_[static_cast<size_t>(p.end++)] = cells.rows[i];
    });
  }
  std::vector<int32_t>().swap(entry_pool);

  // Each cell that makes sets: its pool (first level with controls), or none; and its
  // group (split, context, condition[, batch]), numbered in sorted key order below.
  ix.counts_.cells_per_level.assign(n_levels, {0, 0, 0});
  std::vector<int32_t> cell_pool(n, -1);
  ix.counts_.uncontrolled_per_context.assign(n_ctx, {0, 0, 0});
  int64_t first_uncontrolled = -1;
  KeyIds group_ids(group_space);
  std::vector<int32_t> cell_group(n, -1);
  std::vector<int64_t> group_count;
  for (size_t i = 0; i < n; ++i) {
    if (cells.control[i] && !spec.control_sets) continue;
    for (size_t l = 0; l < n_levels; ++l) {
      bool ok;
      const uint64_t key = level_key(i, split[i], l, &ok);
      if (!ok) continue;
      const int32_t p = pool_ids[l].Find(key);
      if (p >= 0) {
        cell_pool[i] = p;
        if (!cells.control[i]) ++ix.counts_.cells_per_level[l][split[i]];
        break;
      }
    }
    if (cell_pool[i] < 0) {
      ++ix.counts_.uncontrolled_per_context[static_cast<size_t>(cells.context[i])][split[i]];
      ++ix.counts_.uncontrolled_cells[split[i]];
      if (first_uncontrolled < 0) first_uncontrolled = static_cast<int64_t>(i);
      continue;
    }
    RadixKey k;
    k.Add(static_cast<uint64_t>(split[i]), 3);
    k.Add(static_cast<uint64_t>(cells.context[i]), n_ctx);
    k.Add(static_cast<uint64_t>(cells.condition[i]), n_cond);
    k.Add(spec.group_by_batch ? static_cast<uint64_t>(cells.batch[i]) + 1 : 0,
          spec.group_by_batch ? n_batch + 1 : 1);
    const int32_t g = group_ids.GetOr(k.key(), static_cast<int32_t>(group_count.size()));
    if (static_cast<size_t>(g) == group_count.size()) {
      group_count.push_back(0);
      SetGroup sg;
      sg.split = split[i];
      sg.control = cells.control[i] != 0;
      sg.context = cells.context[i];
      sg.condition = cells.condition[i];
      sg.batch = spec.group_by_batch ? cells.batch[i] : -1;
      ix.groups_.push_back(sg);
    }
    ++group_count[g];
    cell_group[i] = g;
  }
  if (first_uncontrolled >= 0 && !spec.skip_uncontrolled) {
    const size_t i = static_cast<size_t>(first_uncontrolled);
    std::string levels;
    for (const auto& level : spec.match_levels) {
      levels += levels.empty() ? "[" : ", [";
      std::string cols = "context";
      for (int32_t c : level) cols += ", " + NameOf(spec.match_names, c);
      levels += cols + "]";
    }
    const int64_t count =
        ix.counts_.uncontrolled_per_context[static_cast<size_t>(cells.context[i])][split[i]];
    return Status::Invalid("context " + NameOf(spec.context_names, cells.context[i]) + " (" +
                           kSplitNames[split[i]] + " split): " + std::to_string(count) +
                           " cells (the first: row " + std::to_string(cells.rows[i]) +
                           ", condition " + NameOf(spec.condition_names, cells.condition[i]) +
                           ") have no control cells at any matching level (" + levels + ")" +
                           (split[i] > 0 && !spec.controls_from_lower_splits
                                ? "; held-out sets draw controls from their own split unless "
                                  "controls_from_lower_splits=True"
                                : "") +
                           "; declare skip_uncontrolled=True to leave them out");
  }

  const size_t n_groups = ix.groups_.size();
  std::vector<int32_t> order(n_groups);
  std::iota(order.begin(), order.end(), 0);
  const auto& gkeys = group_ids.keys();
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return gkeys[a] < gkeys[b]; });
  std::vector<int32_t> rank_of(n_groups);
  std::vector<SetGroup> sorted(n_groups);
  acc = 0;
  for (size_t r = 0; r < n_groups; ++r) {
    rank_of[order[r]] = static_cast<int32_t>(r);
    sorted[r] = ix.groups_[order[r]];
    sorted[r].begin = sorted[r].end = acc;
    acc += group_count[order[r]];
  }
  ix.groups_ = std::move(sorted);
  ix.group_rows_.resize(static_cast<size_t>(acc));
  ix.cell_pools_.resize(static_cast<size_t>(acc));
  for (size_t i = 0; i < n; ++i) {
    if (cell_group[i] < 0) continue;
    SetGroup& g = ix.groups_[rank_of[cell_group[i]]];
    ix.group_rows_[static_cast<size_t>(g.end)] = cells.rows[i];
    ix.cell_pools_[static_cast<size_t>(g.end)] = cell_pool[i];
    ++g.end;
  }
  for (const SetGroup& g : ix.groups_) {
    if (g.size() < spec.min_cells) {
      ++ix.counts_.small_groups[g.split];
      ix.counts_.small_group_cells[g.split] += g.size();
    }
  }
  ix.cell_splits_ = std::move(split);
  ix.spec_ = std::move(spec);
  return std::shared_ptr<const SetIndex>(std::move(index));
}

int64_t SetIndex::SetsOfGroup(int32_t g) const {
  const SetGroup& group = groups_[static_cast<size_t>(g)];
  const int64_t n = group.size();
  if (n < spec_.min_cells || n == 0) return 0;
  if (spec_.sets_per_group > 0) return spec_.sets_per_group;
  return (n + spec_.set_size - 1) / spec_.set_size;
}

}  // namespace cellfeed
