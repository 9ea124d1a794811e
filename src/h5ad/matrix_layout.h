// The layout of an AnnData matrix element (X, raw/X, layers/<name>) as found at open time.
#pragma once

#include <string>

#include "cellfeed/status.h"
#include "io/hdf5/h5_file.h"

namespace cellfeed::h5ad {

enum class MatrixEncoding { kCsr, kDense };

struct MatrixLayout {
  std::string element;  // "X", "raw/X", "layers/counts"
  MatrixEncoding encoding = MatrixEncoding::kCsr;
  int64_t n_rows = 0, n_cols = 0;
  io::DatasetLayout data;  // CSR values, or the dense 2-D array
  io::DatasetLayout indices, indptr;  // CSR only
  int64_t nnz() const { return encoding == MatrixEncoding::kCsr ? data.length() : -1; }
};

// Validates encoding, shape and dtypes. Reads csr_matrix, dense arrays and the anndata
// < 0.7 h5sparse csr group; rejects csc_matrix with the one-line conversion to use.
Result<MatrixLayout> ReadMatrixLayout(const io::H5File& file, const std::string& element);

// Checks a CSR layout's parts whatever their storage: 1-D integer indices/indptr,
// len(indptr) == n_rows + 1, len(data) == len(indices), every chunk written.
Status CheckCsrParts(MatrixLayout& m);

}  // namespace cellfeed::h5ad
