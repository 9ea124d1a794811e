// Reads rows of 1-D and 2-D HDF5 datasets with pread and our own decoders, in parallel.
//
// A read is a list of Pieces: `count` consecutive rows starting at `src` go to output rows
// starting at `dst` (for 1-D arrays a row is one element). Pieces may come in any order
// and may repeat. They are split at chunk boundaries and grouped into one task per chunk
// row, so each chunk is read and decoded once per call, whatever number of pieces it
// serves. Unfiltered chunks are read by exact byte range (runs of nearby pieces merged),
// not whole. Tasks of many arrays and files run on one pool. When the page cache lacks
// what a call will read, all its byte ranges are announced to the kernel first (see
// io/read_ahead.h).
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <vector>

#include "cellfeed/dtype.h"
#include "cellfeed/status.h"
#include "io/chunk_cache.h"
#include "io/file.h"
#include "io/hdf5/dataset_layout.h"
#include "io/read_ahead.h"
#include "io/value_check.h"
#include "util/thread_pool.h"

namespace cellfeed::io {

struct Piece {
  int64_t src = 0;    // first source row
  int64_t count = 0;  // rows
  int64_t dst = 0;    // first output row
  int64_t tag = -1;   // caller's label for error messages (e.g. the matrix row), or -1
};

// One array to read: output rows are row_elements() wide, converted to `out_type`.
struct ArrayRead {
  const DatasetLayout* layout = nullptr;
  const RandomAccessFile* file = nullptr;
  std::vector<Piece> pieces;
  DType out_type = DType::kFloat32;
  void* out = nullptr;
  // When >= 0: every value must lie in [0, valid_below), checked in the stored dtype
  // before conversion (so 64-bit indices are never silently narrowed).
  int64_t valid_below = -1;
  // Read and decode only, write nothing (measuring what the I/O and decoding cost).
  bool discard_output = false;
  // Decoded chunks of filtered arrays, and 4 KiB pages of unfiltered 1-D ones, are looked
  // up here first, and kept here.
  ChunkCache* cache = nullptr;
  // A deflate chunk whose pieces lie in its first part may be inflated only that far
  // (faster; the chunk's Adler-32, which covers all of it, then goes unchecked).
  bool decode_prefix = false;
  // Checks of the float32 output values, as they are written (see io/value_check.h).
  ValueCheck value_check = ValueCheck::kNone;
};

// What a read cost: chunks fetched (compressed chunks are read and decoded whole;
// unfiltered ones by exact byte ranges), bytes read from the file, bytes decoded.
struct ReadStats {
  std::atomic<int64_t> chunks{0};
  std::atomic<int64_t> bytes_read{0};
  std::atomic<int64_t> bytes_decoded{0};
};

// Reads all requests on `pool`; returns the first error with its file, element and chunk.
// When the read finds pages missing from the page cache and `when_cold` is given, it runs
// there instead: a caller that reads on its own thread alone (a pool with no workers)
// names a pool whose threads overlap one another's waits for the disk.
Status ReadArrays(std::span<ArrayRead> reads, util::ThreadPool& pool, ReadStats* stats = nullptr,
                  util::ThreadPool* when_cold = nullptr);

// Convenience: one array, whole rows [begin, end) into a vector.
template <typename T>
Result<std::vector<T>> ReadRange(const DatasetLayout& layout, const RandomAccessFile& file,
                                 int64_t begin, int64_t end, util::ThreadPool& pool) {
  std::vector<T> out(static_cast<size_t>((end - begin) * layout.row_elements()));
  ArrayRead r{&layout, &file, {{begin, end - begin, 0}}, DTypeOf<T>(), out.data()};
  CF_RETURN_IF_ERROR(ReadArrays(std::span<ArrayRead>(&r, 1), pool));
  return out;
}

}  // namespace cellfeed::io
