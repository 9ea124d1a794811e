// The layout of an AnnData dataframe element (obs, var, raw/var): its index and columns.
// Layouts read, in h5ad and zarr alike (through ElementTree): anndata >= 0.7 `dataframe`
// groups (numeric columns read by row on demand), the anndata 0.7 categorical (integer
// codes whose `categories` attribute references obs/__categories/<col>), and, in h5ad
// only, the anndata < 0.7 layout (one compound dataset, loaded
// whole at open: a field X with uns/X_categories is categorical, as anndata decides).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cellfeed/dataframe.h"
#include "cellfeed/status.h"
#include "anndata/element_tree.h"

namespace cellfeed::anndata {

struct ColumnLayout {
  ColumnInfo info;
  std::string node;                       // HDF5 path of the column element
  std::optional<io::DatasetLayout> values;  // numeric values / codes / nullable values
  std::optional<io::DatasetLayout> mask;    // nullable kinds
  std::string strings;                    // dataset holding the strings (string kinds)
  std::shared_ptr<const Column> categories;  // categorical, loaded at open
  bool ordered = false;
  // The whole column, loaded at open (compound dataframes): rows are gathered from it.
  std::shared_ptr<const Column> whole;
};

// Which parts a column of this kind has.
bool KindHasValues(ColumnKind k);
bool KindHasMask(ColumnKind k);
bool KindHasStrings(ColumnKind k);

struct DataFrameLayout {
  std::string element;  // "obs", "var", "raw/var"
  int64_t n_rows = 0;
  std::string index_dataset;  // dataset of the index strings (empty when index_values is set)
  std::shared_ptr<const std::vector<std::string>> index_values;  // the index, loaded at open
  std::vector<ColumnLayout> columns;  // in column-order

  const ColumnLayout* Find(const std::string& name) const;
};

// A dataframe group (anndata >= 0.7) of any store: columns of every encoding anndata has
// written, the 0.7 categorical (codes + `categories` attribute) included.
Result<DataFrameLayout> ReadDataFrameLayout(const ElementTree& tree, const std::string& element);

// The categories array `node` (strings or numbers), loaded whole.
Result<std::shared_ptr<const Column>> LoadCategories(const ElementTree& tree,
                                                     const std::string& node);

}  // namespace cellfeed::anndata
