#include "io/read_ahead.h"

#include <algorithm>

namespace cellfeed::io {

bool AnyUncached(const std::vector<ByteRange>& probes) {
  for (const ByteRange& r : probes) {
    if (!r.file->IsCached(r.begin)) return true;
  }
  return false;
}

void Advise(std::vector<ByteRange> ranges, uint64_t merge_hole) {
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
