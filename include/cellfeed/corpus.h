// A declared training corpus over a collection's files: named sources, each some files
// with an optional filter over obs columns and a quota; held-out splits by group; class
// balance. Corpus::Make evaluates the declaration once (filters, splits, targets: every
// declaration that cannot be met is an error here, before any batch is read) and keeps
// the result as RowSelections; ForEpoch gives the pure plan one epoch's lanes.
//
// Counting rules (docs/CORPUS.md): filter -> split -> quota. Quotas, balance and weights
// apply to the train split; val and test deliver every cell of the split once per epoch.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cellfeed/collection.h"
#include "cellfeed/selection.h"
#include "cellfeed/status.h"

namespace cellfeed {

enum class QuotaKind : uint8_t { kAll, kCount, kWeight };
enum class BalanceKind : uint8_t { kNone, kEqual, kScaled };

struct SourceSpec {
  std::string name;
  std::vector<int> files;  // indices into the corpus collection's files
  // The same files opened alone: their common obs columns are what `where` may use.
  std::shared_ptr<const Collection> files_collection;
  std::string where;       // filter expression; "" = every cell
  QuotaKind quota = QuotaKind::kAll;
  int64_t count = 0;       // kCount
  double weight = 0;       // kWeight
  bool upsample = false;   // a target above the cells available: k or k+1 copies each
  std::string split;       // "" or "train" / "val" / "test": the whole source is that split
  std::string balance_by;  // obs column whose classes get balanced shares of the quota
  BalanceKind balance = BalanceKind::kNone;
  double balance_scale = 0;  // kScaled: class mass n*s/(n+s)
  std::string weight_column;  // per-cell sampling weights (numeric obs column)
};

struct SplitSpec {
  std::string by;  // obs column holding the group (donor_id, dataset, ...); "" = none;
                  // "obs_names": each cell is its own group (fractions only)
  std::vector<std::string> val, test;  // listed groups; the rest is train
  // Or fractions (train, val, test) by a seeded hash of the group value.
  bool by_fraction = false;
  double train = 1, val_fraction = 0, test_fraction = 0;
  uint64_t seed = 0;
  std::vector<std::string> leakage_columns;  // reported when a value spans two splits
};

struct CorpusSpec {
  std::vector<SourceSpec> sources;
  int64_t epoch_cells = 0;  // weights: cells per epoch (0 = the weighted sources' cells)
  double temperature = 0;   // > 0: p_i proportional to weight_i * n_i^(1/T)
  bool resample_each_epoch = false;  // false: subsamples fixed for the run ("fixed")
  uint64_t seed = 0;
  SplitSpec split;
  // Per-cell numeric columns not in obs (QC metrics), over the collection's global rows.
  std::map<std::string, std::shared_ptr<const std::vector<float>>> extra_columns;
};

// What one source holds and receives (counts in cells).
struct SourceCounts {
  std::string name;
  int64_t in_files = 0;
  int64_t passing = 0;         // after the filter
  int64_t train = 0, val = 0, test = 0;
  int64_t requested = 0;       // train target per epoch
  int64_t full_copies = 0;     // every cell delivered full_copies times ...
  int64_t extra_cells = 0;     // ... and this many one time more
};

struct LeakedValue {
  std::string column, value;
  std::vector<std::string> splits;
};

class Corpus {
 public:
  static Result<std::shared_ptr<const Corpus>> Make(std::shared_ptr<const Collection> collection,
                                                    CorpusSpec spec);

  const std::vector<SourceCounts>& counts() const { return counts_; }
  const std::vector<LeakedValue>& leaks() const { return leaks_; }
  // Classes of a balanced source and their train targets (empty otherwise).
  struct ClassTarget { std::string value; int64_t available = 0, target = 0; };
  const std::vector<std::vector<ClassTarget>>& class_targets() const { return class_targets_; }
  const Collection* collection() const { return collection_.get(); }
  int num_sources() const { return static_cast<int>(spec_.sources.size()); }
  const std::string& source_name(int s) const { return spec_.sources[s].name; }

  // This evaluated corpus over `collection`: the same files opened again (a forked
  // DataLoader worker's own handles and threads), without evaluating filters, QC and
  // subsamples again. An error unless it holds the same files with the same rows.
  Result<std::shared_ptr<const Corpus>> WithCollection(std::shared_ptr<const Collection> collection) const;

  // The evaluated state as bytes, and a corpus made from them over `collection` (which
  // must hold the same files with the same rows) and its declaration, without evaluating
  // it again (src/corpus/corpus_blob.cc). The caller checks the files are unchanged.
  std::string Save() const;
  static Result<std::shared_ptr<const Corpus>> Restore(std::shared_ptr<const Collection> collection,
                                                       CorpusSpec spec, std::string_view bytes);

  // The lanes of one epoch of a split ("train", "val" or "test").
  Result<std::shared_ptr<const EpochSelection>> ForEpoch(const std::string& split,
                                                         int64_t epoch) const;
  // Every cell of a split of a source (after the filter), for evaluation lists.
  Result<std::shared_ptr<const RowSelection>> SplitRows(int source, const std::string& split) const;

  struct Impl;

 private:
  Corpus() = default;
  CorpusSpec spec_;
  std::shared_ptr<const Collection> collection_;
  std::vector<SourceCounts> counts_;
  std::vector<LeakedValue> leaks_;
  std::vector<std::vector<ClassTarget>> class_targets_;
  // Per source: its cells in each split (0 train, 1 val, 2 test), after the filter.
  std::vector<std::array<std::shared_ptr<const RowSelection>, 3>> split_rows_;
  // Per source, per class (one class when unbalanced): the train cells and targets.
  struct Stratum {
    std::shared_ptr<const RowSelection> rows;
    std::vector<double> weights;  // per selected row, when weight_column is set
    int64_t target = 0;
    int32_t source = 0, cls = 0;
  };
  std::vector<Stratum> strata_;
  std::shared_ptr<const EpochSelection> fixed_train_;  // when subsamples are fixed
  Result<std::shared_ptr<const EpochSelection>> TrainLanes(int64_t epoch) const;
  friend struct Impl;
};

}  // namespace cellfeed
