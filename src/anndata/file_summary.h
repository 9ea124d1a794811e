// What `cellfeed inspect` shows of an AnnData file or store: the matrix element's arrays
// (dtype, shape, storage, filters, chunking in cells) and the obs/var columns. Shared by
// the h5ad and zarr readers, which both describe their matrix with a MatrixLayout.
#pragma once

#include <string>

#include "cellfeed/collection.h"
#include "anndata/dataframe_layout.h"
#include "anndata/matrix_layout.h"

namespace cellfeed::anndata {

// storage: what every array's storage is called ("zarr v3 zip"), or "" for each array's
// own HDF5 storage ("compact", "chunked", "contiguous").
FileSummary SummarizeAnnData(const std::string& path, const MatrixLayout& m, int64_t n_obs,
                             int64_t n_vars, const DataFrameLayout& obs, const DataFrameLayout& var,
                             const std::string& storage = "");

}  // namespace cellfeed::anndata
