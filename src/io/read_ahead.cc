#include "io/read_ahead.h"

#include <algorithm>

namespace cellfeed::io {

namespace {

// Merged ranges probed (evenly spaced) for pages missing from the page cache.
constexpr size_t kColdProbes = 8;

}  // namespace

void AdviseIfCold(std::vector<ByteRange> ranges, uint64_t merge_hole) {
  std::sort(ranges.begin(), ranges.end(), [](const ByteRange& a, const ByteRange& b) {
    return a.file != b.file ? a.file < b.file : a.begin < b.begin;
  });
  std::vector<ByteRange> merged;
  for (const ByteRange& x : ranges) {
    if (!merged.empty() && merged.back().file == x.file &&
        x.begin <= merged.back().end + merge_hole) {
      merged.back().end = std::max(merged.back().end, x.end);
    } else {
      merged.push_back(x);
    }
  }
  bool cold = false;
  const size_t step = std::max<size_t>(1, merged.size() / kColdProbes);
  for (size_t i = 0; i < merged.size() && !cold; i += step) {
    cold = !merged[i].file->IsCached(merged[i].begin);
  }
  if (!cold) return;
  for (const ByteRange& m : merged) m.file->WillNeed(m.begin, m.end - m.begin);
}

}  // namespace cellfeed::io
