// Read-ahead for cold reads. A worker thread's pread waits for the device, so with one
// read per thread in flight a cold random read keeps only a couple of requests queued,
// far below what a disk (or network volume) serves in parallel. Announcing every byte
// range of a read to the kernel first (posix_fadvise WILLNEED) queues them all at once;
// the preads that follow then find their pages cached or already on their way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "io/file.h"

namespace cellfeed::io {

struct ByteRange {
  const RandomAccessFile* file;
  uint64_t begin, end;
};

// Ranges a caller probes before advising a read: a handful, evenly spaced over it.
inline constexpr size_t kColdProbes = 8;

// Whether the page at the start of any of these ranges is missing from the page cache.
// Advice on cached pages is a page-cache walk that costs more than it saves (12-15% of
// warm uncompressed reads), so reads are advised only when a sample of them is cold.
bool AnyUncached(const std::vector<ByteRange>& probes);

// Merges the ranges per file (across holes up to merge_hole bytes) and advises them.
void Advise(std::vector<ByteRange> ranges, uint64_t merge_hole);

}  // namespace cellfeed::io
