// An h5ad file's matrix element (X, raw/X, layers/<name>) read through libhdf5 at open.
#pragma once

#include <string>

#include "anndata/matrix_layout.h"
#include "cellfeed/status.h"
#include "io/hdf5/h5_file.h"

namespace cellfeed::h5ad {

// Validates encoding, shape and dtypes. Reads csr_matrix, dense arrays and the anndata
// < 0.7 h5sparse csr group; rejects csc_matrix with the one-line conversion to use.
Result<anndata::MatrixLayout> ReadMatrixLayout(const io::H5File& file, const std::string& element);

}  // namespace cellfeed::h5ad
