#include "io/read_ahead.h"

#include <algorithm>

namespace cellfeed::io {

namespace {

// Ranges probed (evenly spaced) for pages missing from the page cache.
constexpr size_t kColdProbes = 8;

}  // namespace

void AdviseIfCold(std::vector<ByteRange> ranges, uint64_t merge_hole) {
  // Probed before any sorting: a warm read (the common case) pays only the probes.
  bool cold = false;
  const size_t step = std::max<size_t>(1, ranges.size() / kColdProbes);
  for (size_t i = 0; i < ranges.size() && !cold; i += step) {
    cold = !ranges[i].file->IsCached(ranges[i].begin);
  }
  if (!cold) return;
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
  for (const ByteRange& m : merged) m.file->WillNeed(m.begin, m.end - m.begin);
}

}  // namespace cellfeed::io
