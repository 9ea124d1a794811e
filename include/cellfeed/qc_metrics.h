// Per-cell quality-control metrics of a collection, in one parallel pass over X.
//
// The metrics scanpy's calculate_qc_metrics computes (names as scanpy gives them):
// total_counts (sum of the row, float64 accumulation), n_genes_by_counts (nonzero
// values) and pct_counts_<name> (percentage of the row's counts in the flagged genes;
// 0 for an empty row). Rows are read in slices of `rows_per_slice` with the collection's
// read path (pread + decode on its worker threads), so memory stays bounded.
#pragma once

#include <cstdint>
#include <vector>

#include "cellfeed/collection.h"
#include "cellfeed/status.h"

namespace cellfeed {

struct QcMetrics {
  std::vector<double> total_counts;
  std::vector<int32_t> n_genes_by_counts;
  std::vector<float> pct_counts_flagged;
};

// flagged_genes: one flag per collection column (e.g. genes whose names start with "MT-").
Result<QcMetrics> ComputeQcMetrics(const Collection& collection,
                                   const std::vector<uint8_t>& flagged_genes,
                                   int64_t rows_per_slice = 16384);

}  // namespace cellfeed
