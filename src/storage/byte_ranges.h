// Byte ranges of one object, and the merging of nearby ranges into fewer, larger
// requests (as Arrow's ReadRangeCache does): a GET costs ~15-100 ms before its first
// byte, so reading a small hole is cheaper than a second request.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace cellfeed::storage {

struct ByteRange {
  uint64_t offset = 0, size = 0;
  uint64_t end() const { return offset + size; }
};

// A request covering some of the asked ranges: `range` is fetched, and asked range
// `members[i]` lies inside it.
struct CoalescedRange {
  ByteRange range;
  std::vector<size_t> members;  // indices into the asked ranges
};

// Sorts the ranges by offset and merges a range into the previous request when the hole
// between them is at most `max_hole` bytes and the request stays within `max_size` (a
// single range larger than that is its own request). Overlapping and repeated ranges are
// allowed. Empty ranges belong to no request.
std::vector<CoalescedRange> CoalesceRanges(std::span<const ByteRange> ranges, uint64_t max_hole,
                                           uint64_t max_size);

}  // namespace cellfeed::storage
