// What every successful read must be, whatever the input file: a valid CSR matrix of the
// requested rows in the collection's gene space. The fuzz targets abort otherwise.
#pragma once

#include <cstdlib>

#include "cellfeed/csr.h"

namespace cellfeed::fuzz {

inline void AbortUnlessValidCsr(const CsrMatrix& x, size_t rows, int64_t n_vars) {
  if (x.n_rows != static_cast<int64_t>(rows) || x.n_cols != n_vars) std::abort();
  if (x.indptr.size() != rows + 1 || x.indptr[0] != 0) std::abort();
  for (size_t i = 0; i + 1 < x.indptr.size(); ++i) {
    if (x.indptr[i] > x.indptr[i + 1]) std::abort();
  }
  if (static_cast<int64_t>(x.indices.size()) != x.indptr.back()) std::abort();
  if (x.data.size() != x.indices.size()) std::abort();
  for (int32_t j : x.indices) {
    if (j < 0 || j >= n_vars) std::abort();
  }
}

}  // namespace cellfeed::fuzz
