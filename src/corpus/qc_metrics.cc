// ComputeQcMetrics (include/cellfeed/qc_metrics.h): slices of rows read in order, so each
// chunk of X is decoded once; the sums are a light pass over each decoded slice.
#include "cellfeed/qc_metrics.h"

#include <algorithm>
#include <numeric>

namespace cellfeed {

Result<QcMetrics> ComputeQcMetrics(const Collection& collection,
                                   const std::vector<uint8_t>& flagged_genes,
                                   int64_t rows_per_slice) {
  if (static_cast<int64_t>(flagged_genes.size()) != collection.n_vars()) {
    return Status::Invalid("qc metrics: " + std::to_string(flagged_genes.size()) + " gene flags for " +
                           std::to_string(collection.n_vars()) + " genes");
  }
  const int64_t n = collection.n_obs();
  QcMetrics m;
  m.total_counts.resize(static_cast<size_t>(n));
  m.n_genes_by_counts.resize(static_cast<size_t>(n));
  m.pct_counts_flagged.resize(static_cast<size_t>(n));
  CsrMatrix slice;
  std::vector<int64_t> rows;
  for (int64_t begin = 0; begin < n; begin += rows_per_slice) {
    const int64_t end = std::min(n, begin + rows_per_slice);
    rows.resize(static_cast<size_t>(end - begin));
    std::iota(rows.begin(), rows.end(), begin);
    CF_RETURN_IF_ERROR(collection.ReadInto(rows, slice));
    for (int64_t r = 0; r < end - begin; ++r) {
      double total = 0, flagged = 0;
      int32_t nonzero = 0;
      for (int64_t o = slice.indptr[r]; o < slice.indptr[r + 1]; ++o) {
        const double v = slice.data[o];
        total += v;
        nonzero += v != 0;
        if (flagged_genes[static_cast<size_t>(slice.indices[o])]) flagged += v;
      }
      const size_t i = static_cast<size_t>(begin + r);
      m.total_counts[i] = total;
      m.n_genes_by_counts[i] = nonzero;
      m.pct_counts_flagged[i] = total > 0 ? static_cast<float>(100.0 * flagged / total) : 0.0f;
    }
  }
  return m;
}

}  // namespace cellfeed
