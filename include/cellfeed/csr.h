// A batch of cells as a CSR matrix: what readers and the loader hand out.
#pragma once

#include <cstdint>

#include "cellfeed/buffer.h"

namespace cellfeed {

struct CsrMatrix {
  int64_t n_rows = 0;
  int64_t n_cols = 0;
  Buffer<int64_t> indptr;  // n_rows + 1 entries, indptr[0] == 0
  Buffer<int32_t> indices;
  Buffer<float> data;
};

}  // namespace cellfeed
