// Read-ahead for cold reads. A worker thread's pread waits for the device, so with one
// read per thread in flight a cold random read keeps only a couple of requests queued,
// far below what a disk (or network volume) serves in parallel. Announcing every byte
// range of a read to the kernel first (posix_fadvise WILLNEED) queues them all at once;
// the preads that follow then find their pages cached or already on their way.
#pragma once

#include <cstdint>
#include <vector>

#include "io/file.h"

namespace cellfeed::io {

struct ByteRange {
  const RandomAccessFile* file;
  uint64_t begin, end;
};

// Merges the ranges per file (across holes up to merge_hole bytes) and advises them,
// unless a sample of them is in the page cache: advice on cached pages is a
// page-cache walk that costs more than it saves (12-15% of warm uncompressed reads).
void AdviseIfCold(std::vector<ByteRange> ranges, uint64_t merge_hole);

}  // namespace cellfeed::io
