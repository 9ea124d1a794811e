// Corpus: a declaration evaluated once into RowSelections (include/cellfeed/corpus.h).
//
// Make: filter every source (corpus/filter.h), assign each cell a split (the source's own
// split, else its group's: listed values, or a seeded hash of the group value, so a group
// never spans two splits), then compute the train targets (exact counts, weights with
// largest-remainder rounding and a temperature, class balance) and check that each can be
// met. TrainLanes turns targets into lanes: a uniform subsample without replacement (a
// keyed Feistel permutation of the cells' ranks: rank i is kept if perm(i) < target), or
// k full copies plus a subsample for the remainder, or a weighted subsample
// (Efraimidis-Spirakis keys -log(u)/w, the target smallest).
#include "cellfeed/corpus.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <set>
#include <sstream>

#include "corpus/filter.h"
#include "corpus/quota.h"
#include "plan/block_permutation.h"
#include "plan/rng.h"

namespace cellfeed {

namespace {

using plan_internal::MixCombine;

constexpr uint64_t kTagSubsample = 0x53756273616D706CULL;  // "Subsampl"
constexpr uint64_t kTagWeighted = 0x5765696768746564ULL;   // "Weighted"
constexpr uint64_t kTagSplit = 0x53706C6974486173ULL;      // "SplitHas"
constexpr uint64_t kTagLane = 0x4C616E654B657973ULL;       // "LaneKeys"
const char* const kSplits[3] = {"train", "val", "test"};

int SplitIndex(const std::string& s) {
  for (int i = 0; i < 3; ++i)
    if (s == kSplits[i]) return i;
  return -1;
}

std::string Join(const std::vector<std::string>& v, const std::string& sep = ", ") {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

// A source's cells as the filter sees them: its files opened alone, plus extra columns.
class SourceColumns : public corpus::ColumnSource {
 public:
  SourceColumns(const Collection& corpus_collection, const SourceSpec& spec,
                const std::map<std::string, std::shared_ptr<const std::vector<float>>>& extra)
      : corpus_(corpus_collection), spec_(spec), extra_(extra) {
    for (int f : spec.files) {
      const int64_t a = corpus_.file_offsets()[f], b = corpus_.file_offsets()[f + 1];
      for (int64_t r = a; r < b; ++r) global_.push_back(r);
    }
  }
  int64_t length() const override { return static_cast<int64_t>(global_.size()); }
  std::string where() const override {
    std::vector<std::string> files;
    for (int f : spec_.files) files.push_back(corpus_.files()[f]);
    return "source '" + spec_.name + "' (" + Join(files) + ")";
  }
  const std::vector<int64_t>& global_rows() const { return global_; }

  Result<const Column*> Get(const std::string& name) override {
    auto it = cache_.find(name);
    if (it != cache_.end()) return &it->second;
    Column c;
    const Collection& sc = *spec_.files_collection;
    bool common = false;
    for (const ColumnInfo& ci : sc.obs_columns()) common = common || ci.name == name;
    auto extra = extra_.find(name);
    if (common) {  // obs first: a file's own column wins over a computed one
      CF_ASSIGN_OR_RETURN(c, sc.Obs(name));
    } else if (extra != extra_.end()) {
      c.info.name = name;
      c.info.kind = ColumnKind::kNumeric;
      c.info.dtype = DType::kFloat32;
      c.length = length();
      c.values.resize(global_.size() * sizeof(float));
      float* out = reinterpret_cast<float*>(c.values.data());
      for (size_t i = 0; i < global_.size(); ++i) out[i] = (*extra->second)[static_cast<size_t>(global_[i])];
    } else {
      for (const FileSummary& fs : sc.summaries()) {
        bool has = false;
        std::vector<std::string> names;
        for (const ColumnInfo& ci : fs.obs_columns) {
          has = has || ci.name == name;
          names.push_back(ci.name);
        }
        if (!has) {
          std::string near;
          for (const auto& v : corpus::NearestValues(name, names)) near += (near.empty() ? "'" : ", '") + v + "'";
          return Status::Invalid(fs.path + ": obs column '" + name + "' not found (source '" + spec_.name +
                                 "'; nearest columns: " + near +
                                 "; QC metrics total_counts, n_genes_by_counts, pct_counts_mt are computed when named)");
        }
      }
      return Status::Invalid("obs column '" + name + "' has different kinds in the files of " + where());
    }
    return &cache_.emplace(name, std::move(c)).first->second;
  }

 private:
  const Collection& corpus_;
  const SourceSpec& spec_;
  const std::map<std::string, std::shared_ptr<const std::vector<float>>>& extra_;
  std::vector<int64_t> global_;  // source cell i -> global row
  std::map<std::string, Column> cache_;
};

// Each cell's value of a column as a string (group and class labels); "" = missing.
Result<std::vector<std::string>> ValuesAsStrings(const Column& c) {
  std::vector<std::string> out(static_cast<size_t>(c.length));
  auto number = [](double x) {
    std::ostringstream s;
    s << x;
    return s.str();
  };
  if (c.info.kind == ColumnKind::kCategorical) {
    const Column& cats = *c.categories;
    std::vector<std::string> names(static_cast<size_t>(cats.length));
    std::vector<double> v(names.size());
    if (cats.strings.empty() && !names.empty()) {
      ConvertElements(cats.info.dtype, cats.values.data(), DType::kFloat64, v.data(), v.size());
    }
    for (size_t k = 0; k < names.size(); ++k) names[k] = cats.strings.empty() ? number(v[k]) : cats.strings[k];
    std::vector<int64_t> codes(out.size());
    if (!codes.empty()) ConvertElements(c.info.dtype, c.values.data(), DType::kInt64, codes.data(), codes.size());
    for (size_t i = 0; i < out.size(); ++i) {
      if (codes[i] >= 0 && codes[i] < cats.length) out[i] = names[static_cast<size_t>(codes[i])];
    }
    return out;
  }
  if (!c.strings.empty() || c.info.kind == ColumnKind::kString || c.info.kind == ColumnKind::kNullableString) {
    for (size_t i = 0; i < out.size(); ++i) {
      if (c.mask.empty() || !c.mask[i]) out[i] = c.strings[i];
    }
    return out;
  }
  std::vector<double> v(out.size());
  if (!v.empty()) ConvertElements(c.info.dtype, c.values.data(), DType::kFloat64, v.data(), v.size());
  for (size_t i = 0; i < out.size(); ++i) {
    if ((c.mask.empty() || !c.mask[i]) && !std::isnan(v[i])) out[i] = number(v[i]);
  }
  return out;
}

uint64_t HashString(const std::string& s, uint64_t h) {
  for (unsigned char ch : s) h = MixCombine(h, ch);
  return MixCombine(h, s.size());
}

std::shared_ptr<const RowSelection> Subsample(const RowSelection& rows, int64_t n, uint64_t key) {
  auto out = std::make_shared<RowSelection>(rows.size());
  const plan_internal::BlockPermutation perm(static_cast<uint64_t>(rows.count()), key);
  int64_t i = 0;
  rows.ForEach(0, rows.size(), [&](int64_t r) {
    if (static_cast<int64_t>(perm.Forward(static_cast<uint64_t>(i++))) < n) out->Set(r);
  });
  out->Finish();
  return out;
}

}  // namespace

Result<std::shared_ptr<const Corpus>> Corpus::Make(std::shared_ptr<const Collection> collection,
                                                   CorpusSpec spec) {
  if (!collection) return Status::Invalid("corpus: no collection");
  if (spec.sources.empty()) return Status::Invalid("corpus: no sources declared");
  const int64_t n_rows = collection->n_obs();
  const int num_files = static_cast<int>(collection->files().size());
  std::set<std::string> names;
  bool any_count = false, any_weight = false;
  for (const SourceSpec& s : spec.sources) {
    if (s.name.empty()) return Status::Invalid("corpus: every source needs a name");
    if (!names.insert(s.name).second) return Status::Invalid("corpus: two sources are named '" + s.name + "'");
    if (s.files.empty()) return Status::Invalid("corpus: source '" + s.name + "' has no files");
    for (int f : s.files) {
      if (f < 0 || f >= num_files) return Status::Invalid("corpus: source '" + s.name + "': bad file index");
    }
    if (!s.files_collection) return Status::Invalid("corpus: source '" + s.name + "' has no opened files");
    if (!s.split.empty() && SplitIndex(s.split) < 0) {
      return Status::Invalid("corpus: source '" + s.name + "': split must be 'train', 'val' or 'test', got '" + s.split + "'");
    }
    const bool held_out = !s.split.empty() && s.split != "train";
    if (s.quota == QuotaKind::kCount) {
      if (s.count < 1) return Status::Invalid("corpus: source '" + s.name + "': cells must be >= 1, got " + std::to_string(s.count));
      any_count = any_count || !held_out;
    }
    if (s.quota == QuotaKind::kWeight) {
      if (!(s.weight > 0) || !std::isfinite(s.weight)) {
        return Status::Invalid("corpus: source '" + s.name + "': weight must be > 0, got " + std::to_string(s.weight));
      }
      any_weight = any_weight || !held_out;
    }
    if (held_out && s.quota != QuotaKind::kAll) {
      return Status::Invalid("corpus: source '" + s.name + "' is held out (split '" + s.split +
                             "'): quotas apply to the train split only; remove cells/weight");
    }
    if (s.balance == BalanceKind::kScaled && !(s.balance_scale > 0)) {
      return Status::Invalid("corpus: source '" + s.name + "': balance scale must be > 0");
    }
    if (s.balance != BalanceKind::kNone && s.balance_by.empty()) {
      return Status::Invalid("corpus: source '" + s.name + "': balance needs a column (balance_by)");
    }
    if (s.balance != BalanceKind::kNone && !s.weight_column.empty()) {
      return Status::Invalid("corpus: source '" + s.name + "': choose class balance or per-cell weights, not both");
    }
  }
  if (any_count && any_weight) {
    return Status::Invalid("corpus: sources give either exact cell counts or weights, not a mix of both "
                           "(weights share epoch_cells; counts are absolute)");
  }
  if (spec.temperature < 0 || !std::isfinite(spec.temperature)) {
    return Status::Invalid("corpus: temperature must be > 0");
  }
  if (spec.split.by_fraction) {
    const double t = spec.split.train + spec.split.val_fraction + spec.split.test_fraction;
    if (spec.split.train < 0 || spec.split.val_fraction < 0 || spec.split.test_fraction < 0 || std::abs(t - 1) > 1e-9) {
      return Status::Invalid("corpus: split fractions must be >= 0 and sum to 1, got " + std::to_string(t));
    }
  }

  auto c = std::shared_ptr<Corpus>(new Corpus());
  c->collection_ = collection;
  const size_t ns = spec.sources.size();
  c->counts_.resize(ns);
  c->split_rows_.resize(ns);
  c->class_targets_.resize(ns);
  std::vector<std::unique_ptr<SourceColumns>> columns;
  std::set<std::string> group_values;  // every group value seen, for listed-value checks
  std::map<std::string, std::map<std::string, std::set<int>>> leak_sets;  // column -> value -> splits
  std::vector<std::vector<int8_t>> cell_split(ns);  // per source cell: split, -1 = filtered out

  for (size_t s = 0; s < ns; ++s) {
    const SourceSpec& src = spec.sources[s];
    columns.push_back(std::make_unique<SourceColumns>(*collection, src, spec.extra_columns));
    SourceColumns& cols = *columns.back();
    const size_t n = static_cast<size_t>(cols.length());
    std::vector<uint8_t> pass(n, corpus::kTrue);
    if (!src.where.empty()) {
      CF_ASSIGN_OR_RETURN(auto expr, corpus::ParseFilter(src.where));
      CF_ASSIGN_OR_RETURN(pass, corpus::EvaluateFilter(*expr, cols));
    }
    SourceCounts& k = c->counts_[s];
    k.name = src.name;
    k.in_files = static_cast<int64_t>(n);
    std::vector<int8_t>& split = cell_split[s];
    split.assign(n, -1);
    for (size_t i = 0; i < n; ++i) {
      if (pass[i] == corpus::kTrue) split[i] = 0;
    }
    k.passing = static_cast<int64_t>(std::count(split.begin(), split.end(), 0));
    if (k.passing == 0) {
      return Status::Invalid("corpus: " + cols.where() + ": the filter \"" + src.where +
                             "\" matches no cell of its " + std::to_string(n) + " cells");
    }
    if (!src.split.empty()) {
      const int8_t sp = static_cast<int8_t>(SplitIndex(src.split));
      for (int8_t& x : split) x = x < 0 ? x : sp;
    } else if (!spec.split.by.empty()) {
      CF_ASSIGN_OR_RETURN(const Column* gcol, cols.Get(spec.split.by));
      CF_ASSIGN_OR_RETURN(std::vector<std::string> groups, ValuesAsStrings(*gcol));
      const std::set<std::string> val(spec.split.val.begin(), spec.split.val.end());
      const std::set<std::string> test(spec.split.test.begin(), spec.split.test.end());
      std::map<std::string, int8_t> memo;
      for (size_t i = 0; i < n; ++i) {
        if (split[i] < 0) continue;
        const std::string& g = groups[i];
        if (!g.empty()) group_values.insert(g);
        auto it = memo.find(g);
        if (it == memo.end()) {
          int8_t sp = 0;
          if (g.empty()) {
            sp = 0;  // no group: train (documented)
          } else if (spec.split.by_fraction) {
            const uint64_t h = HashString(g, MixCombine(spec.split.seed, kTagSplit));
            const double u = static_cast<double>(h >> 11) * 0x1.0p-53;
            sp = u < spec.split.train ? 0 : u < spec.split.train + spec.split.val_fraction ? 1 : 2;
          } else {
            sp = test.count(g) ? 2 : val.count(g) ? 1 : 0;
          }
          it = memo.emplace(g, sp).first;
        }
        split[i] = it->second;
      }
    }
    for (size_t i = 0; i < n; ++i) {
      if (split[i] == 0) ++k.train;
      if (split[i] == 1) ++k.val;
      if (split[i] == 2) ++k.test;
    }
    for (int sp = 0; sp < 3; ++sp) {
      auto rows = std::make_shared<RowSelection>(n_rows);
      for (size_t i = 0; i < n; ++i) {
        if (split[i] == sp) rows->Set(cols.global_rows()[i]);
      }
      rows->Finish();
      c->split_rows_[s][static_cast<size_t>(sp)] = rows;
    }
    for (const std::string& lc : spec.split.leakage_columns) {
      CF_ASSIGN_OR_RETURN(const Column* lcol, cols.Get(lc));
      CF_ASSIGN_OR_RETURN(std::vector<std::string> vals, ValuesAsStrings(*lcol));
      auto& per_value = leak_sets[lc];
      for (size_t i = 0; i < n; ++i) {
        if (split[i] >= 0 && !vals[i].empty()) per_value[vals[i]].insert(split[i]);
      }
    }
  }
  // Listed held-out groups that no cell has would hold out nothing.
  if (!spec.split.by.empty() && !spec.split.by_fraction) {
    const std::vector<std::string> have(group_values.begin(), group_values.end());
    for (const auto* list : {&spec.split.val, &spec.split.test}) {
      for (const std::string& g : *list) {
        if (group_values.count(g)) continue;
        std::string near;
        for (const auto& v : corpus::NearestValues(g, have)) near += (near.empty() ? "'" : ", '") + v + "'";
        return Status::Invalid("corpus: split by '" + spec.split.by + "': no cell passing the filters has the value '" +
                               g + "' (nearest existing values: " + near + ")");
      }
    }
  }
  for (const auto& [col, per_value] : leak_sets) {
    for (const auto& [value, splits] : per_value) {
      if (splits.size() < 2) continue;
      LeakedValue leak{col, value, {}};
      for (int sp : splits) leak.splits.push_back(kSplits[sp]);
      c->leaks_.push_back(std::move(leak));
    }
  }

  // Train targets per source.
  std::vector<int64_t> available(ns, 0);
  std::vector<bool> in_train(ns, false);
  for (size_t s = 0; s < ns; ++s) {
    in_train[s] = spec.sources[s].split.empty() || spec.sources[s].split == "train";
    available[s] = in_train[s] ? c->counts_[s].train : 0;
  }
  std::vector<int64_t> target(ns, 0);
  if (any_weight) {
    std::vector<double> mass(ns, 0);
    int64_t weighted_cells = 0;
    for (size_t s = 0; s < ns; ++s) {
      if (!in_train[s] || spec.sources[s].quota != QuotaKind::kWeight) continue;
      mass[s] = spec.sources[s].weight;
      if (spec.temperature > 0) mass[s] *= std::pow(static_cast<double>(available[s]), 1.0 / spec.temperature);
      weighted_cells += available[s];
    }
    const int64_t total = spec.epoch_cells > 0 ? spec.epoch_cells : weighted_cells;
    const std::vector<int64_t> shares = corpus::LargestRemainder(total, mass);
    for (size_t s = 0; s < ns; ++s) {
      if (in_train[s]) target[s] = spec.sources[s].quota == QuotaKind::kWeight ? shares[s] : available[s];
    }
  } else {
    for (size_t s = 0; s < ns; ++s) {
      if (in_train[s]) target[s] = spec.sources[s].quota == QuotaKind::kCount ? spec.sources[s].count : available[s];
    }
  }
  for (size_t s = 0; s < ns; ++s) {
    const SourceSpec& src = spec.sources[s];
    SourceCounts& k = c->counts_[s];
    k.requested = target[s];
    if (!in_train[s]) continue;
    if (target[s] > 0 && available[s] == 0) {
      return Status::Invalid("corpus: source '" + src.name + "' has no train cells (" + std::to_string(k.passing) +
                             " pass its filter, all held out) but is asked for " + std::to_string(target[s]));
    }
    if (target[s] > available[s] && !src.upsample) {
      return Status::Invalid("corpus: source '" + src.name + "' is asked for " + std::to_string(target[s]) +
                             " cells but has " + std::to_string(available[s]) +
                             " (train cells passing its filter); lower the quota or set upsample = true");
    }
    if (available[s] > 0) {
      k.full_copies = target[s] / available[s];
      k.extra_cells = target[s] % available[s];
    }
    // Strata: one per class when balanced, else one.
    const RowSelection& train_rows = *c->split_rows_[s][0];
    SourceColumns& cols = *columns[s];
    if (src.balance != BalanceKind::kNone && target[s] > 0) {
      CF_ASSIGN_OR_RETURN(const Column* lcol, cols.Get(src.balance_by));
      CF_ASSIGN_OR_RETURN(std::vector<std::string> labels, ValuesAsStrings(*lcol));
      std::map<std::string, std::vector<int64_t>> by_class;  // sorted by value: deterministic
      const auto& g = cols.global_rows();
      for (size_t i = 0; i < labels.size(); ++i) {
        if (cell_split[s][i] == 0 && !labels[i].empty()) by_class[labels[i]].push_back(g[i]);
      }
      if (by_class.empty()) {
        return Status::Invalid("corpus: source '" + src.name + "': no train cell has a value in '" + src.balance_by + "'");
      }
      std::vector<double> mass;
      for (const auto& [v, rows] : by_class) {
        const double m = static_cast<double>(rows.size());
        mass.push_back(src.balance == BalanceKind::kEqual ? 1.0 : m * src.balance_scale / (m + src.balance_scale));
      }
      const std::vector<int64_t> shares = corpus::LargestRemainder(target[s], mass);
      int32_t cls = 0;
      for (const auto& [v, rows] : by_class) {
        const int64_t want = shares[static_cast<size_t>(cls)];
        const int64_t have = static_cast<int64_t>(rows.size());
        if (want > have && !src.upsample) {
          return Status::Invalid("corpus: source '" + src.name + "': class '" + v + "' of '" + src.balance_by +
                                 "' is asked for " + std::to_string(want) + " cells but has " + std::to_string(have) +
                                 "; set upsample = true, use a balance scale, or lower the quota");
        }
        auto sel = std::make_shared<RowSelection>(n_rows);
        for (int64_t r : rows) sel->Set(r);
        sel->Finish();
        c->class_targets_[s].push_back({v, have, want});
        c->strata_.push_back({sel, {}, want, static_cast<int32_t>(s), cls++});
      }
    } else {
      Stratum st{c->split_rows_[s][0], {}, target[s], static_cast<int32_t>(s), 0};
      if (!src.weight_column.empty() && target[s] > 0) {
        CF_ASSIGN_OR_RETURN(const Column* wcol, cols.Get(src.weight_column));
        if (wcol->info.kind != ColumnKind::kNumeric || wcol->info.dtype == DType::kBool) {
          return Status::Invalid("corpus: source '" + src.name + "': weight column '" + src.weight_column + "' must be numeric");
        }
        std::vector<double> w(static_cast<size_t>(wcol->length));
        if (!w.empty()) ConvertElements(wcol->info.dtype, wcol->values.data(), DType::kFloat64, w.data(), w.size());
        int64_t positive = 0;
        for (size_t i = 0; i < w.size(); ++i) {
          if (cell_split[s][i] != 0) continue;
          if (!(w[i] >= 0) || !std::isfinite(w[i])) {
            return Status::Invalid("corpus: " + cols.where() + ": weight column '" + src.weight_column + "' has the value " +
                                   std::to_string(w[i]) + " at cell " + std::to_string(i) + "; expected finite weights >= 0");
          }
          positive += w[i] > 0;
          st.weights.push_back(w[i]);
        }
        if (target[s] > positive) {
          return Status::Invalid("corpus: source '" + src.name + "' is asked for " + std::to_string(target[s]) +
                                 " cells but only " + std::to_string(positive) + " have a weight > 0 in '" +
                                 src.weight_column + "' (weighted draws are without replacement)");
        }
      }
      (void)train_rows;
      c->strata_.push_back(std::move(st));
    }
  }
  c->spec_ = std::move(spec);
  if (!c->spec_.resample_each_epoch) {
    CF_ASSIGN_OR_RETURN(c->fixed_train_, c->TrainLanes(0));
  }
  return std::shared_ptr<const Corpus>(std::move(c));
}

Result<std::shared_ptr<const EpochSelection>> Corpus::TrainLanes(int64_t epoch) const {
  auto sel = std::make_shared<EpochSelection>();
  const uint64_t epoch_key = spec_.resample_each_epoch ? static_cast<uint64_t>(epoch) + 1 : 0;
  for (const Stratum& st : strata_) {
    const int64_t m = st.rows->count();
    if (st.target == 0 || m == 0) continue;
    const uint64_t base = MixCombine(MixCombine(MixCombine(spec_.seed, kTagSubsample), epoch_key),
                                     MixCombine(static_cast<uint64_t>(st.source), static_cast<uint64_t>(st.cls)));
    auto lane = [&](std::shared_ptr<const RowSelection> rows, int32_t copy) {
      SelectionLane l;
      l.rows = std::move(rows);
      l.source = st.source;
      l.copy = copy;
      l.key = MixCombine(MixCombine(kTagLane, MixCombine(static_cast<uint64_t>(st.source), static_cast<uint64_t>(st.cls))),
                         static_cast<uint64_t>(copy));
      sel->lanes.push_back(std::move(l));
    };
    if (!st.weights.empty()) {
      // Efraimidis-Spirakis: the target cells with the smallest -log(u)/w, u keyed by cell.
      std::vector<std::pair<double, int64_t>> keys;
      keys.reserve(st.weights.size());
      size_t i = 0;
      const uint64_t wkey = MixCombine(MixCombine(spec_.seed, kTagWeighted), epoch_key);
      st.rows->ForEach(0, st.rows->size(), [&](int64_t r) {
        const double w = st.weights[i++];
        if (w <= 0) return;
        const uint64_t h = MixCombine(wkey, static_cast<uint64_t>(r));
        const double u = (static_cast<double>(h >> 11) + 0.5) * 0x1.0p-53;
        keys.emplace_back(-std::log(u) / w, r);
      });
      std::nth_element(keys.begin(), keys.begin() + (st.target - 1), keys.end());
      auto rows = std::make_shared<RowSelection>(st.rows->size());
      for (int64_t j = 0; j < st.target; ++j) rows->Set(keys[static_cast<size_t>(j)].second);
      rows->Finish();
      lane(std::move(rows), 0);
      continue;
    }
    const int64_t copies = st.target / m, extra = st.target % m;
    for (int64_t k = 0; k < copies; ++k) lane(st.rows, static_cast<int32_t>(k));
    if (extra > 0) lane(Subsample(*st.rows, extra, MixCombine(base, static_cast<uint64_t>(copies))),
                        static_cast<int32_t>(copies));
  }
  return std::shared_ptr<const EpochSelection>(std::move(sel));
}

Result<std::shared_ptr<const EpochSelection>> Corpus::ForEpoch(const std::string& split,
                                                               int64_t epoch) const {
  const int sp = SplitIndex(split);
  if (sp < 0) return Status::Invalid("split must be 'train', 'val' or 'test', got '" + split + "'");
  if (sp == 0) {
    if (fixed_train_) return fixed_train_;
    return TrainLanes(epoch);
  }
  auto sel = std::make_shared<EpochSelection>();
  for (size_t s = 0; s < split_rows_.size(); ++s) {
    const auto& rows = split_rows_[s][static_cast<size_t>(sp)];
    if (rows->count() == 0) continue;
    SelectionLane l;
    l.rows = rows;
    l.source = static_cast<int32_t>(s);
    l.key = MixCombine(MixCombine(kTagLane, static_cast<uint64_t>(sp)), s);
    sel->lanes.push_back(std::move(l));
  }
  if (sel->lanes.empty()) {
    return Status::Invalid("corpus: the split '" + split + "' holds no cell (check the split declaration)");
  }
  return std::shared_ptr<const EpochSelection>(std::move(sel));
}

Result<std::shared_ptr<const RowSelection>> Corpus::SplitRows(int source, const std::string& split) const {
  const int sp = SplitIndex(split);
  if (sp < 0) return Status::Invalid("split must be 'train', 'val' or 'test', got '" + split + "'");
  if (source < 0 || source >= static_cast<int>(split_rows_.size())) return Status::OutOfRange("no such source");
  return split_rows_[static_cast<size_t>(source)][static_cast<size_t>(sp)];
}

}  // namespace cellfeed
