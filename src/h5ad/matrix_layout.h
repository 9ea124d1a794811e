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

// Validates encoding, shape and dtypes; rejects csc_matrix and pre-0.7 layouts clearly.
Result<MatrixLayout> ReadMatrixLayout(const io::H5File& file, const std::string& element);

}  // namespace cellfeed::h5ad
