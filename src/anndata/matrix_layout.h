// The layout of an AnnData matrix element (X, raw/X, layers/<name>) as found at open time,
// in h5ad and zarr alike.
#pragma once

#include <string>

#include "cellfeed/status.h"
#include "io/hdf5/dataset_layout.h"

namespace cellfeed::anndata {

enum class MatrixEncoding { kCsr, kDense };

struct MatrixLayout {
  std::string element;  // "X", "raw/X", "layers/counts"
  MatrixEncoding encoding = MatrixEncoding::kCsr;
  int64_t n_rows = 0, n_cols = 0;
  io::DatasetLayout data;  // CSR values, or the dense 2-D array
  io::DatasetLayout indices, indptr;  // CSR only
  int64_t nnz() const { return encoding == MatrixEncoding::kCsr ? data.length() : -1; }
};

// Checks a CSR layout's parts whatever their storage: 1-D integer indices/indptr,
// len(indptr) == n_rows + 1, len(data) == len(indices), every chunk written.
Status CheckCsrParts(MatrixLayout& m);

}  // namespace cellfeed::anndata
