#include "storage/byte_ranges.h"

#include <algorithm>
#include <numeric>

namespace cellfeed::storage {

std::vector<CoalescedRange> CoalesceRanges(std::span<const ByteRange> ranges, uint64_t max_hole,
                                           uint64_t max_size) {
  std::vector<size_t> order(ranges.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return ranges[a].offset < ranges[b].offset; });
  std::vector<CoalescedRange> out;
  for (size_t i : order) {
    const ByteRange& r = ranges[i];
    if (r.size == 0) continue;
    if (!out.empty()) {
      ByteRange& last = out.back().range;
      uint64_t merged_end = std::max(last.end(), r.end());
      bool inside = r.end() <= last.end();
      if (inside || (r.offset <= last.end() + max_hole && merged_end - last.offset <= max_size)) {
        last.size = merged_end - last.offset;
        out.back().members.push_back(i);
        continue;
      }
    }
    out.push_back({r, {i}});
  }
  return out;
}

}  // namespace cellfeed::storage
