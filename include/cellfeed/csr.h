// A batch of cells as a CSR matrix: what readers and the loader hand out.
#pragma once

#include <cstdint>
#include <vector>

namespace cellfeed {

struct CsrMatrix {
  int64_t n_rows = 0;
  int64_t n_cols = 0;
  std::vector<int64_t> indptr;  // n_rows + 1 entries, indptr[0] == 0
  std::vector<int32_t> indices;
  std::vector<float> data;
};

}  // namespace cellfeed
