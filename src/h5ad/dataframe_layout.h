// The layout of an AnnData dataframe element (obs, var, raw/var): its index and columns.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cellfeed/dataframe.h"
#include "cellfeed/status.h"
#include "io/hdf5/h5_file.h"

namespace cellfeed::h5ad {

struct ColumnLayout {
  ColumnInfo info;
  std::string node;                       // HDF5 path of the column element
  std::optional<io::DatasetLayout> values;  // numeric values / codes / nullable values
  std::optional<io::DatasetLayout> mask;    // nullable kinds
  std::string strings;                    // dataset holding the strings (string kinds)
  std::shared_ptr<const Column> categories;  // categorical, loaded at open
  bool ordered = false;
};

struct DataFrameLayout {
  std::string element;  // "obs", "var", "raw/var"
  int64_t n_rows = 0;
  std::string index_dataset;  // dataset of the index strings
  std::vector<ColumnLayout> columns;  // in column-order

  const ColumnLayout* Find(const std::string& name) const;
};

Result<DataFrameLayout> ReadDataFrameLayout(const io::H5File& file, const std::string& element);

}  // namespace cellfeed::h5ad
