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
#include <cstring>
#include <sstream>
#include <unordered_map>

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
// SplitSpec::by naming no column: every cell is its own group.
const char* const kSplitByCell = "obs_names";

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

// The cells of one file of a source, as filters see them: the source's files opened
// alone (their common obs columns), then computed columns (QC metrics). One file at a time
// keeps memory to a file's columns, not the corpus's.
class FileColumns : public corpus::ColumnSource {
 public:
  FileColumns(const Collection& corpus_collection, const SourceSpec& spec, size_t file_pos,
              const std::map<std::string, std::shared_ptr<const std::vector<float>>>& extra)
      : spec_(spec), extra_(extra), file_pos_(file_pos) {
    const auto& local = spec.files_collection->file_offsets();
    lo_ = local[file_pos];
    hi_ = local[file_pos + 1];
    global0_ = corpus_collection.file_offsets()[static_cast<size_t>(spec.files[file_pos])];
    path_ = spec.files_collection->files()[file_pos];
  }
  int64_t length() const override { return hi_ - lo_; }
  int64_t global_begin() const { return global0_; }
  std::string where() const override { return "source '" + spec_.name + "' (" + path_ + ")"; }

  Result<const Column*> Get(const std::string& name) override {
    auto it = cache_.find(name);
    if (it != cache_.end()) return &it->second;
    Column c;
    const Collection& sc = *spec_.files_collection;
    bool common = false, own = false;
    for (const ColumnInfo& ci : sc.obs_columns()) common = common || ci.name == name;
    for (const ColumnInfo& ci : sc.summaries()[file_pos_].obs_columns) own = own || ci.name == name;
    auto extra = extra_.find(name);
    // obs first: a file's own column wins over a computed one, file by file (a source's
    // files need not all have it; those without get the computed values).
    if (common) {
      std::vector<int64_t> rows(static_cast<size_t>(length()));
      std::iota(rows.begin(), rows.end(), lo_);
      CF_ASSIGN_OR_RETURN(c, sc.Obs(name, std::span<const int64_t>(rows)));
    } else if (own) {
      std::vector<int64_t> rows(static_cast<size_t>(length()));
      std::iota(rows.begin(), rows.end(), 0);
      CF_ASSIGN_OR_RETURN(c, sc.FileObs(file_pos_, name, std::span<const int64_t>(rows)));
    } else if (extra != extra_.end()) {
      c.info.name = name;
      c.info.kind = ColumnKind::kNumeric;
      c.info.dtype = DType::kFloat32;
      c.length = length();
      c.values.resize(static_cast<size_t>(length()) * sizeof(float));
      std::memcpy(c.values.data(), extra->second->data() + global0_, c.values.size());
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
      return Status::Invalid("obs column '" + name + "' has different kinds in the files of source '" +
                             spec_.name + "'");
    }
    return &cache_.emplace(name, std::move(c)).first->second;
  }

 private:
  const SourceSpec& spec_;
  const std::map<std::string, std::shared_ptr<const std::vector<float>>>& extra_;
  size_t file_pos_ = 0;
  int64_t lo_ = 0, hi_ = 0, global0_ = 0;
  std::string path_;
  std::map<std::string, Column> cache_;
};

// A column's values as ids into a list of names (group, class and leakage labels):
// categoricals use their codes and categories; other kinds are factorized. -1 = missing.
struct Factorized {
  std::vector<int32_t> ids;
  std::vector<std::string> names;
};

Result<Factorized> Factorize(const Column& c) {
  Factorized f;
  const size_t n = static_cast<size_t>(c.length);
  f.ids.assign(n, -1);
  auto number = [](double x) {
    std::ostringstream s;
    s << x;
    return s.str();
  };
  if (c.info.kind == ColumnKind::kCategorical) {
    const Column& cats = *c.categories;
    f.names.resize(static_cast<size_t>(cats.length));
    std::vector<double> v(f.names.size());
    if (cats.strings.empty() && !v.empty()) {
      ConvertElements(cats.info.dtype, cats.values.data(), DType::kFloat64, v.data(), v.size());
    }
    for (size_t k = 0; k < f.names.size(); ++k) f.names[k] = cats.strings.empty() ? number(v[k]) : cats.strings[k];
    std::vector<int64_t> codes(n);
    if (n > 0) ConvertElements(c.info.dtype, c.values.data(), DType::kInt64, codes.data(), n);
    for (size_t i = 0; i < n; ++i) {
      if (codes[i] >= 0 && codes[i] < cats.length) f.ids[i] = static_cast<int32_t>(codes[i]);
    }
    return f;
  }
  std::unordered_map<std::string, int32_t> index;
  auto id_of = [&](const std::string& s) {
    auto [it, fresh] = index.emplace(s, static_cast<int32_t>(f.names.size()));
    if (fresh) f.names.push_back(s);
    return it->second;
  };
  if (!c.strings.empty() || c.info.kind == ColumnKind::kString || c.info.kind == ColumnKind::kNullableString) {
    for (size_t i = 0; i < n; ++i) {
      if (c.mask.empty() || !c.mask[i]) f.ids[i] = id_of(c.strings[i]);
    }
    return f;
  }
  std::vector<double> v(n);
  if (n > 0) ConvertElements(c.info.dtype, c.values.data(), DType::kFloat64, v.data(), n);
  for (size_t i = 0; i < n; ++i) {
    if ((c.mask.empty() || !c.mask[i]) && !std::isnan(v[i])) f.ids[i] = id_of(number(v[i]));
  }
  return f;
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
  if (spec.split.by == kSplitByCell && !spec.split.by_fraction) {
    return Status::Invalid("corpus: a split by obs_names (each cell its own group) takes fractions, "
                           "e.g. fractions = {train = 0.9, val = 0.1}, not listed values");
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
  std::set<std::string> group_values;  // every group value seen, for listed-value checks
  std::map<std::string, std::map<std::string, std::set<int>>> leak_sets;  // column -> value -> splits
  const std::set<std::string> val_groups(spec.split.val.begin(), spec.split.val.end());
  const std::set<std::string> test_groups(spec.split.test.begin(), spec.split.test.end());
  auto group_split = [&](const std::string& g) -> int8_t {
    if (spec.split.by_fraction) {
      const uint64_t h = HashString(g, MixCombine(spec.split.seed, kTagSplit));
      const double u = static_cast<double>(h >> 11) * 0x1.0p-53;
      return u < spec.split.train ? 0 : u < spec.split.train + spec.split.val_fraction ? 1 : 2;
    }
    return test_groups.count(g) ? 2 : val_groups.count(g) ? 1 : 0;
  };

  for (size_t s = 0; s < ns; ++s) {
    const SourceSpec& src = spec.sources[s];
    std::unique_ptr<corpus::FilterNode> expr;
    if (!src.where.empty()) {
      CF_ASSIGN_OR_RETURN(expr, corpus::ParseFilter(src.where));
    }
    corpus::StringPresence presence;
    std::array<std::shared_ptr<RowSelection>, 3> rows;
    for (auto& r : rows) r = std::make_shared<RowSelection>(n_rows);
    SourceCounts& k = c->counts_[s];
    k.name = src.name;
    std::vector<std::string> file_names;
    for (size_t fp = 0; fp < src.files.size(); ++fp) {
      FileColumns cols(*collection, src, fp, spec.extra_columns);
      file_names.push_back(src.files_collection->files()[fp]);
      const size_t n = static_cast<size_t>(cols.length());
      std::vector<int8_t> split(n, 0);  // -1 = filtered out
      if (expr) {
        CF_ASSIGN_OR_RETURN(std::vector<uint8_t> pass, corpus::EvaluateFilter(*expr, cols, &presence));
        for (size_t i = 0; i < n; ++i) split[i] = pass[i] == corpus::kTrue ? 0 : -1;
      }
      if (!src.split.empty()) {
        const int8_t sp = static_cast<int8_t>(SplitIndex(src.split));
        for (int8_t& x : split) x = x < 0 ? x : sp;
      } else if (spec.split.by == kSplitByCell) {
        // Each cell is its own group: hashed from its file's name and its obs name, so a
        // cell keeps its split when files are added, removed or reordered.
        const auto& local = src.files_collection->file_offsets();
        std::vector<int64_t> rows_fp(static_cast<size_t>(n));
        std::iota(rows_fp.begin(), rows_fp.end(), local[fp]);
        CF_ASSIGN_OR_RETURN(std::vector<std::string> names,
                            src.files_collection->ObsNames(std::span<const int64_t>(rows_fp)));
        const std::string path = src.files_collection->files()[fp];
        const std::string prefix = path.substr(path.find_last_of('/') + 1) + '/';
        for (size_t i = 0; i < n; ++i) {
          if (split[i] >= 0) split[i] = group_split(prefix + names[i]);
        }
      } else if (!spec.split.by.empty()) {
        CF_ASSIGN_OR_RETURN(const Column* gcol, cols.Get(spec.split.by));
        CF_ASSIGN_OR_RETURN(Factorized g, Factorize(*gcol));
        std::vector<int8_t> per_id(g.names.size());
        for (size_t id = 0; id < per_id.size(); ++id) per_id[id] = group_split(g.names[id]);
        std::vector<uint8_t> used(g.names.size(), 0);
        for (size_t i = 0; i < n; ++i) {
          if (split[i] < 0) continue;
          const int32_t id = g.ids[i];
          if (id < 0) continue;  // no group: train (documented)
          split[i] = per_id[static_cast<size_t>(id)];
          used[static_cast<size_t>(id)] = 1;
        }
        for (size_t id = 0; id < used.size(); ++id)
          if (used[id]) group_values.insert(g.names[id]);
      }
      const int64_t g0 = cols.global_begin();
      for (size_t i = 0; i < n; ++i) {
        if (split[i] < 0) continue;
        ++k.passing;
        rows[static_cast<size_t>(split[i])]->Set(g0 + static_cast<int64_t>(i));
      }
      k.in_files += static_cast<int64_t>(n);
      for (const std::string& lc : spec.split.leakage_columns) {
        CF_ASSIGN_OR_RETURN(const Column* lcol, cols.Get(lc));
        CF_ASSIGN_OR_RETURN(Factorized v, Factorize(*lcol));
        std::vector<uint8_t> splits_of(v.names.size(), 0);  // bit per split
        for (size_t i = 0; i < n; ++i) {
          if (split[i] >= 0 && v.ids[i] >= 0) splits_of[static_cast<size_t>(v.ids[i])] |= uint8_t(1) << split[i];
        }
        auto& per_value = leak_sets[lc];
        for (size_t id = 0; id < splits_of.size(); ++id) {
          for (int sp = 0; sp < 3; ++sp)
            if (splits_of[id] & (1 << sp)) per_value[v.names[id]].insert(sp);
        }
      }
    }
    CF_RETURN_IF_ERROR(presence.Check("source '" + src.name + "' (" + Join(file_names) + ")"));
    for (auto& r : rows) r->Finish();
    k.train = rows[0]->count();
    k.val = rows[1]->count();
    k.test = rows[2]->count();
    if (k.passing == 0) {
      return Status::Invalid("corpus: source '" + src.name + "' (" + Join(file_names) + "): the filter \"" +
                             src.where + "\" matches no cell of its " + std::to_string(k.in_files) + " cells");
    }
    for (int sp = 0; sp < 3; ++sp) c->split_rows_[s][static_cast<size_t>(sp)] = rows[static_cast<size_t>(sp)];
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
    // Strata: one per class when balanced, else one. Labels and weights are read again,
    // one file at a time, for the train cells.
    const RowSelection& train_rows = *c->split_rows_[s][0];
    if (src.balance != BalanceKind::kNone && target[s] > 0) {
      std::map<std::string, std::vector<int64_t>> by_class;  // sorted by value: deterministic
      for (size_t fp = 0; fp < src.files.size(); ++fp) {
        FileColumns cols(*collection, src, fp, spec.extra_columns);
        CF_ASSIGN_OR_RETURN(const Column* lcol, cols.Get(src.balance_by));
        CF_ASSIGN_OR_RETURN(Factorized labels, Factorize(*lcol));
        const int64_t g0 = cols.global_begin();
        for (size_t i = 0; i < labels.ids.size(); ++i) {
          const int64_t r = g0 + static_cast<int64_t>(i);
          if (labels.ids[i] >= 0 && train_rows.Contains(r)) by_class[labels.names[static_cast<size_t>(labels.ids[i])]].push_back(r);
        }
      }
      if (by_class.empty()) {
        return Status::Invalid("corpus: source '" + src.name + "': no train cell has a value in '" + src.balance_by + "'");
      }
      std::vector<double> mass;
      for (const auto& [v, cells] : by_class) {
        const double m = static_cast<double>(cells.size());
        mass.push_back(src.balance == BalanceKind::kEqual ? 1.0 : m * src.balance_scale / (m + src.balance_scale));
      }
      const std::vector<int64_t> shares = corpus::LargestRemainder(target[s], mass);
      int32_t cls = 0;
      for (auto& [v, cells] : by_class) {
        const int64_t want = shares[static_cast<size_t>(cls)];
        const int64_t have = static_cast<int64_t>(cells.size());
        if (want > have && !src.upsample) {
          return Status::Invalid("corpus: source '" + src.name + "': class '" + v + "' of '" + src.balance_by +
                                 "' is asked for " + std::to_string(want) + " cells but has " + std::to_string(have) +
                                 "; set upsample = true, use a balance scale, or lower the quota");
        }
        auto sel = std::make_shared<RowSelection>(n_rows);
        for (int64_t r : cells) sel->Set(r);
        sel->Finish();
        std::vector<int64_t>().swap(cells);
        c->class_targets_[s].push_back({v, have, want});
        c->strata_.push_back({sel, {}, want, static_cast<int32_t>(s), cls++});
      }
    } else {
      Stratum st{c->split_rows_[s][0], {}, target[s], static_cast<int32_t>(s), 0};
      if (!src.weight_column.empty() && target[s] > 0) {
        int64_t positive = 0;
        for (size_t fp = 0; fp < src.files.size(); ++fp) {
          FileColumns cols(*collection, src, fp, spec.extra_columns);
          CF_ASSIGN_OR_RETURN(const Column* wcol, cols.Get(src.weight_column));
          if (wcol->info.kind != ColumnKind::kNumeric || wcol->info.dtype == DType::kBool) {
            return Status::Invalid("corpus: " + cols.where() + ": weight column '" + src.weight_column +
                                   "' must be numeric, it is " + ColumnKindName(wcol->info.kind));
          }
          std::vector<double> w(static_cast<size_t>(wcol->length));
          if (!w.empty()) ConvertElements(wcol->info.dtype, wcol->values.data(), DType::kFloat64, w.data(), w.size());
          const int64_t g0 = cols.global_begin();
          for (size_t i = 0; i < w.size(); ++i) {
            if (!train_rows.Contains(g0 + static_cast<int64_t>(i))) continue;
            if (!(w[i] >= 0) || !std::isfinite(w[i])) {
              return Status::Invalid("corpus: " + cols.where() + ": weight column '" + src.weight_column +
                                     "' has the value " + std::to_string(w[i]) + " at row " + std::to_string(i) +
                                     "; expected finite weights >= 0");
            }
            positive += w[i] > 0;
            st.weights.push_back(w[i]);
          }
        }
        if (target[s] > positive) {
          return Status::Invalid("corpus: source '" + src.name + "' is asked for " + std::to_string(target[s]) +
                                 " cells but only " + std::to_string(positive) + " have a weight > 0 in '" +
                                 src.weight_column + "' (weighted draws are without replacement)");
        }
      }
      c->strata_.push_back(std::move(st));
    }
  }
  c->spec_ = std::move(spec);
  if (!c->spec_.resample_each_epoch) {
    CF_ASSIGN_OR_RETURN(c->fixed_train_, c->TrainLanes(0));
  }
  return std::shared_ptr<const Corpus>(std::move(c));
}

Result<std::shared_ptr<const Corpus>> Corpus::WithCollection(std::shared_ptr<const Collection> collection) const {
  if (!collection) return Status::Invalid("corpus: no collection");
  if (collection->files() != collection_->files() || collection->file_offsets() != collection_->file_offsets()) {
    return Status::Invalid("corpus: the collection opened again does not hold the declared files with "
                           "the same rows (a file changed since the corpus was evaluated?)");
  }
  // Everything evaluated is immutable and shared; only the collection differs.
  auto c = std::shared_ptr<Corpus>(new Corpus(*this));
  c->collection_ = std::move(collection);
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
