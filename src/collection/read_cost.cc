// Collection::MeasureReadCost: the floor a loader's throughput is compared with.
#include <chrono>

#include "collection/collection_impl.h"

namespace cellfeed {

Result<ReadCost> Collection::MeasureReadCost(
    std::span<const std::vector<int64_t>> row_sets) const {
  io::ReadStats stats;
  ReadCost cost;
  for (const auto& rows : row_sets) CF_RETURN_IF_ERROR(impl_->CheckRows(rows));
  const auto t0 = std::chrono::steady_clock::now();
  CsrMatrix unused;
  for (const auto& rows : row_sets) {
    CF_RETURN_IF_ERROR(ReadCsrRows(*impl_, rows, unused, &stats, /*discard=*/true));
    cost.cells += static_cast<int64_t>(rows.size());
  }
  cost.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  cost.chunks = stats.chunks;
  cost.bytes_read = stats.bytes_read;
  cost.bytes_decoded = stats.bytes_decoded;
  return cost;
}

}  // namespace cellfeed
