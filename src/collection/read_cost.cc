// Collection::MeasureReadCost: the floor a loader's throughput is compared with.
// Finding which chunks each row set needs is untimed; reading and decoding them is one
// parallel job on the collection's pool, so the floor has no serial gaps a loader
// could hide by overlapping fetches.
#include <chrono>

#include "collection/collection_impl.h"

namespace cellfeed {

Result<ReadCost> Collection::MeasureReadCost(
    std::span<const std::vector<int64_t>> row_sets) const {
  ReadCost cost;
  // Untimed: which chunks each row set touches (its indptr entries, from the cache).
  std::vector<io::ArrayRead> reads;
  for (const auto& rows : row_sets) {
    CF_RETURN_IF_ERROR(impl_->CheckRows(rows));
    CF_RETURN_IF_ERROR(PlanDecodeOnly(*impl_, rows, reads));
    cost.cells += static_cast<int64_t>(rows.size());
  }
  // Timed: one parallel pass reading and decoding those chunks, once per row set that
  // touches them, with no serial gaps between row sets.
  io::ReadStats stats;
  const auto t0 = std::chrono::steady_clock::now();
  CF_RETURN_IF_ERROR(io::ReadArrays(reads, *impl_->pool, &stats));
  cost.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  cost.chunks = stats.chunks;
  cost.bytes_read = stats.bytes_read;
  cost.bytes_decoded = stats.bytes_decoded;
  return cost;
}

}  // namespace cellfeed
