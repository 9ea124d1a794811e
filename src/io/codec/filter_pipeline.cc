#include "io/codec/filter_pipeline.h"

#include <algorithm>

#include "io/codec/codecs.h"
#include "io/codec/zarr_codecs.h"

namespace cellfeed::io::codec {

Result<FilterPipeline> FilterPipeline::Make(std::vector<Filter> filters, size_t element_size) {
  for (const Filter& f : filters) {
    switch (f.id) {
      case kFilterDeflate: case kFilterShuffle: case kFilterFletcher32: case kFilterLzf:
      case kCodecBlosc: case kCodecZstd: case kCodecLz4: case kCodecGzip: case kCodecRawDeflate:
      case kCodecCrc32c: case kCodecByteSwap:
        break;
      case kCodecTranspose:
        if (f.params.size() != 2) return Status::Invalid("transpose needs the chunk's rows, cols");
        break;
      case kFilterSzip:
        return Status::Unsupported("unsupported HDF5 filter szip (id 4)");
      case kFilterNbit:
        return Status::Unsupported("unsupported HDF5 filter nbit (id 5)");
      case kFilterScaleOffset:
        return Status::Unsupported("unsupported HDF5 filter scale-offset (id 6)");
      default:
        return Status::Unsupported("unsupported HDF5 filter id " + std::to_string(f.id) +
                                   (f.name.empty() ? "" : " (" + f.name + ")") +
                                   "; supported: deflate, shuffle, fletcher32, lzf");
    }
  }
  FilterPipeline p;
  p.filters_ = std::move(filters);
  p.element_size_ = element_size;
  return p;
}

std::string FilterPipeline::Describe() const {
  if (filters_.empty()) return "none";
  std::string s;
  for (const Filter& f : filters_) {
    if (!s.empty()) s += "+";
    switch (f.id) {
      case kFilterDeflate:
        s += "gzip";
        if (!f.params.empty()) s += "(" + std::to_string(f.params[0]) + ")";
        break;
      case kFilterShuffle: s += "shuffle"; break;
      case kFilterFletcher32: s += "fletcher32"; break;
      case kFilterLzf: s += "lzf"; break;
      case kCodecBlosc: s += "blosc"; break;
      case kCodecZstd: s += "zstd"; break;
      case kCodecLz4: s += "lz4"; break;
      case kCodecGzip: s += "gzip"; break;
      case kCodecRawDeflate: s += "zip-deflate"; break;
      case kCodecCrc32c: s += "crc32c"; break;
      case kCodecByteSwap: s += "big-endian"; break;
      case kCodecTranspose: s += "transpose"; break;
      default: s += std::to_string(f.id);
    }
  }
  return s;
}

Status FilterPipeline::Decode(std::span<const uint8_t> stored, uint32_t filter_mask,
                              size_t chunk_bytes, std::vector<uint8_t>& scratch,
                              std::vector<uint8_t>& out) const {
  return DecodeChain(stored, filter_mask, chunk_bytes, true, scratch, out);
}

Status FilterPipeline::DecodeUnsized(std::span<const uint8_t> stored, uint32_t filter_mask,
                                     size_t max_bytes, std::vector<uint8_t>& scratch,
                                     std::vector<uint8_t>& out) const {
  return DecodeChain(stored, filter_mask, max_bytes, false, scratch, out);
}

Status FilterPipeline::DecodeChain(std::span<const uint8_t> stored, uint32_t filter_mask,
                                   size_t chunk_bytes, bool exact, std::vector<uint8_t>& scratch,
                                   std::vector<uint8_t>& out) const {
  // Cheap sanity bound first: the most the stored bytes could decode to through the
  // active filters (deflate expands at most ~1032x, LZF ~88x). A chunk that cannot
  // reach its size is corrupt, and no chunk-sized buffer is allocated for it.
  uint64_t most = stored.size();
  for (int i = static_cast<int>(filters_.size()) - 1; i >= 0; --i) {
    if (filter_mask & (1u << i)) continue;
    const uint64_t cap = uint64_t{1} << 40;
    switch (filters_[i].id) {
      case kFilterDeflate: most = most == 0 ? 0 : std::min(cap, most * 1032 + 1024); break;
      case kFilterLzf: most = most == 0 ? 0 : std::min(cap, most * 90 + 64); break;
      case kFilterFletcher32: case kCodecCrc32c: most = most >= 4 ? most - 4 : 0; break;
      case kCodecBlosc: case kCodecZstd: case kCodecLz4: case kCodecGzip: case kCodecRawDeflate:
        most = most == 0 ? 0 : cap;  // bounded by the chunk size while decoding
        break;
      default: break;
    }
  }
  if (exact && most < chunk_bytes) {
    return Status::Invalid("stored chunk of " + std::to_string(stored.size()) +
                           " bytes cannot decode to the chunk's " + std::to_string(chunk_bytes) +
                           " bytes");
  }
  // Ping-pong between the two buffers; `cur` views the bytes decoded so far.
  std::span<const uint8_t> cur = stored;
  std::vector<uint8_t>* bufs[2] = {&out, &scratch};
  int next = 0;
  // Fletcher32 adds 4 bytes; everything else must decode to exactly chunk_bytes.
  for (int i = static_cast<int>(filters_.size()) - 1; i >= 0; --i) {
    if (filter_mask & (1u << i)) continue;
    std::vector<uint8_t>& dst = *bufs[next];
    const Filter& f = filters_[i];
    // The most a step may produce. Variable-size chunks (strings) bound the inflaters by
    // deflate's largest ratio rather than allocating the whole limit up front.
    const size_t cap = exact ? chunk_bytes + 4 : std::min(chunk_bytes, cur.size() * 1032 + 1024);
    Status st;
    switch (f.id) {
      case kFilterDeflate: st = InflateZlib(cur, cap, dst); break;
      case kFilterLzf: st = DecodeLzf(cur, cap, dst); break;
      case kFilterShuffle: Unshuffle(cur, element_size_, dst); break;
      case kFilterFletcher32: st = VerifyFletcher32(cur, dst); break;
      case kCodecBlosc: st = DecodeBlosc(cur, exact ? chunk_bytes + 4 : chunk_bytes, dst); break;
      case kCodecZstd: st = DecodeZstd(cur, exact ? chunk_bytes + 4 : chunk_bytes, dst); break;
      case kCodecLz4: st = DecodeLz4Numcodecs(cur, exact ? chunk_bytes + 4 : chunk_bytes, dst); break;
      case kCodecGzip: st = InflateGzip(cur, cap, dst); break;
      case kCodecRawDeflate: st = InflateRaw(cur, exact ? 2 * chunk_bytes + 1024 : cap, dst); break;
      case kCodecCrc32c: st = VerifyCrc32c(cur, dst); break;
      case kCodecByteSwap: SwapBytes(cur, element_size_, dst); break;
      case kCodecTranspose:
        st = Untranspose(cur, element_size_, f.params[0], f.params[1], dst);
        break;
      default: st = Status::Unsupported("filter " + std::to_string(f.id));
    }
    if (!st.ok()) {
      return Status(st.code(), st.message() + " (chunk of " + std::to_string(chunk_bytes) +
                                   " bytes expected)");
    }
    cur = std::span<const uint8_t>(dst.data(), dst.size());
    next ^= 1;
  }
  if (exact && cur.size() != chunk_bytes) {
    return Status::Invalid("chunk decodes to " + std::to_string(cur.size()) +
                           " bytes, expected " + std::to_string(chunk_bytes));
  }
  if (cur.data() != out.data()) out.assign(cur.begin(), cur.end());
  return Status::OK();
}

namespace {
// The one filter a chunk goes through, or 0 when it goes through none or several.
int OnlyActive(const std::vector<Filter>& filters, uint32_t filter_mask) {
  int active = 0, id = 0;
  for (size_t i = 0; i < filters.size(); ++i) {
    if (filter_mask & (1u << i)) continue;
    ++active;
    id = filters[i].id;
  }
  return active == 1 ? id : 0;
}
}  // namespace

bool FilterPipeline::CanDecodePrefix(uint32_t filter_mask) const {
  const int id = OnlyActive(filters_, filter_mask);
  return id == kFilterDeflate || id == kCodecBlosc;
}

Status FilterPipeline::DecodePrefix(std::span<const uint8_t> stored, uint32_t filter_mask,
                                    size_t prefix_bytes, size_t chunk_bytes,
                                    std::vector<uint8_t>& out) const {
  if (!CanDecodePrefix(filter_mask)) {
    return Status::Unsupported("filters " + Describe() + " cannot decode a chunk prefix");
  }
  Status st = OnlyActive(filters_, filter_mask) == kCodecBlosc
                  ? DecodeBloscPrefix(stored, prefix_bytes, chunk_bytes, out)
                  : InflateZlibPrefix(stored, prefix_bytes, out);
  if (st.ok()) return st;
  return Status(st.code(), st.message() + " (chunk of " + std::to_string(chunk_bytes) +
                               " bytes expected)");
}

}  // namespace cellfeed::io::codec
