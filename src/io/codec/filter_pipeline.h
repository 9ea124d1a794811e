// An HDF5 dataset's filter pipeline (or a zarr array's codec chain), read once at open time, applied in reverse
// (last filter first) to each chunk on worker threads.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "cellfeed/status.h"

namespace cellfeed::io::codec {

enum FilterId : int {
  kFilterDeflate = 1,
  kFilterShuffle = 2,
  kFilterFletcher32 = 3,
  kFilterSzip = 4,
  kFilterNbit = 5,
  kFilterScaleOffset = 6,
  kFilterLzf = 32000,
  // zarr codecs (ids of our own, above HDF5's registered range). A zarr codec chain is
  // listed in encoding order like an HDF5 pipeline, so decoding runs it last to first;
  // zarr's zlib codec is the deflate filter above (both write zlib streams).
  kCodecBlosc = 1 << 20,
  kCodecZstd,
  kCodecLz4,        // numcodecs LZ4 (4-byte size header)
  kCodecGzip,
  kCodecRawDeflate, // a DEFLATE zip member (chunks whose filter_mask bit is set are STORED)
  kCodecCrc32c,
  kCodecByteSwap,   // big-endian elements
  kCodecTranspose,  // params: rows, cols of the chunk, which is stored transposed
};

struct Filter {
  int id = 0;
  std::string name;
  std::vector<unsigned> params;  // cd_values
};

class FilterPipeline {
 public:
  FilterPipeline() = default;
  // Rejects filters we cannot decode (szip, nbit, scale-offset, plugins) with a message
  // naming the filter; `element_size` feeds the shuffle filter.
  static Result<FilterPipeline> Make(std::vector<Filter> filters, size_t element_size);

  bool empty() const { return filters_.empty(); }
  const std::vector<Filter>& filters() const { return filters_; }
  std::string Describe() const;  // "shuffle+deflate(4)", "none", ...

  // Decodes one stored chunk. `chunk_bytes` is the chunk's decoded size; bit i of
  // `filter_mask` set means filter i was skipped for this chunk. `scratch` and `out`
  // are caller-owned so worker threads reuse their buffers.
  Status Decode(std::span<const uint8_t> stored, uint32_t filter_mask, size_t chunk_bytes,
                std::vector<uint8_t>& scratch, std::vector<uint8_t>& out) const;

  // Decodes a chunk of variable decoded size (vlen-utf8 strings): at most `max_bytes`.
  Status DecodeUnsized(std::span<const uint8_t> stored, uint32_t filter_mask, size_t max_bytes,
                       std::vector<uint8_t>& scratch, std::vector<uint8_t>& out) const;

  // Whether the first bytes of a chunk can be decoded without the rest: true when the
  // only active filter is deflate or blosc (shuffle and checksums need the whole chunk;
  // blosc shuffles within its own blocks).
  bool CanDecodePrefix(uint32_t filter_mask) const;
  // The first `prefix_bytes` of a chunk of `chunk_bytes` decoded bytes (see
  // codec::InflateZlibPrefix, codec::DecodeBloscPrefix); errors read like Decode's.
  Status DecodePrefix(std::span<const uint8_t> stored, uint32_t filter_mask, size_t prefix_bytes,
                      size_t chunk_bytes, std::vector<uint8_t>& out) const;

 private:
  Status DecodeChain(std::span<const uint8_t> stored, uint32_t filter_mask, size_t chunk_bytes,
                     bool exact, std::vector<uint8_t>& scratch, std::vector<uint8_t>& out) const;
  std::vector<Filter> filters_;
  size_t element_size_ = 1;
};

}  // namespace cellfeed::io::codec
