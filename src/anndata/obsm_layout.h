// The entries of obsm (per-cell matrices: embeddings, PCA, selected features) found at
// open, in h5ad and zarr alike (through ElementTree): dense 2-D arrays and csr_matrix
// groups, each described like X so its rows are read by the same chunk machinery.
// Problems with one entry (another encoding, a wrong row count) are kept as that entry's
// error and raised only when the entry is read: a file's X opens whatever its obsm holds.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "anndata/element_tree.h"
#include "cellfeed/status.h"
#include "anndata/matrix_layout.h"

namespace cellfeed::anndata {

struct ObsmEntry {
  std::string key;
  std::optional<MatrixLayout> matrix;  // element "obsm/<key>", n_rows == the file's n_obs
  Status error;                        // why it cannot be read, when matrix is empty
};

struct ObsmLayout {
  std::vector<ObsmEntry> entries;  // sorted by key
  Status error;                    // why obsm as a whole cannot be listed (OK = it can)

  const ObsmEntry* Find(const std::string& key) const;
};

ObsmLayout ReadObsmLayout(const ElementTree& tree, int64_t n_obs);

}  // namespace cellfeed::anndata
