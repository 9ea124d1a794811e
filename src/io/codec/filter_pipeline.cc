#include "io/codec/filter_pipeline.h"

#include <algorithm>

#include "io/codec/codecs.h"

namespace cellfeed::io::codec {

Result<FilterPipeline> FilterPipeline::Make(std::vector<Filter> filters, size_t element_size) {
  for (const Filter& f : filters) {
    switch (f.id) {
      case kFilterDeflate: case kFilterShuffle: case kFilterFletcher32: case kFilterLzf:
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
      default: s += std::to_string(f.id);
    }
  }
  return s;
}

Status FilterPipeline::Decode(std::span<const uint8_t> stored, uint32_t filter_mask,
                              size_t chunk_bytes, std::vector<uint8_t>& scratch,
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
      case kFilterFletcher32: most = most >= 4 ? most - 4 : 0; break;
      default: break;
    }
  }
  if (most < chunk_bytes) {
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
    Status st;
    switch (f.id) {
      case kFilterDeflate: st = InflateZlib(cur, chunk_bytes + 4, dst); break;
      case kFilterLzf: st = DecodeLzf(cur, chunk_bytes + 4, dst); break;
      case kFilterShuffle: Unshuffle(cur, element_size_, dst); break;
      case kFilterFletcher32: st = VerifyFletcher32(cur, dst); break;
      default: st = Status::Unsupported("filter " + std::to_string(f.id));
    }
    if (!st.ok()) {
      return Status(st.code(), st.message() + " (chunk of " + std::to_string(chunk_bytes) +
                                   " bytes expected)");
    }
    cur = std::span<const uint8_t>(dst.data(), dst.size());
    next ^= 1;
  }
  if (cur.size() != chunk_bytes) {
    return Status::Invalid("chunk decodes to " + std::to_string(cur.size()) +
                           " bytes, expected " + std::to_string(chunk_bytes));
  }
  if (cur.data() != out.data()) out.assign(cur.begin(), cur.end());
  return Status::OK();
}

bool FilterPipeline::CanDecodePrefix(uint32_t filter_mask) const {
  int active = 0, deflate = 0;
  for (size_t i = 0; i < filters_.size(); ++i) {
    if (filter_mask & (1u << i)) continue;
    ++active;
    deflate += filters_[i].id == kFilterDeflate;
  }
  return active == 1 && deflate == 1;
}

Status FilterPipeline::DecodePrefix(std::span<const uint8_t> stored, uint32_t filter_mask,
                                    size_t prefix_bytes, size_t chunk_bytes,
                                    std::vector<uint8_t>& out) const {
  if (!CanDecodePrefix(filter_mask)) {
    return Status::Unsupported("filters " + Describe() + " cannot decode a chunk prefix");
  }
  Status st = InflateZlibPrefix(stored, prefix_bytes, out);
  if (st.ok()) return st;
  return Status(st.code(), st.message() + " (chunk of " + std::to_string(chunk_bytes) +
                               " bytes expected)");
}

}  // namespace cellfeed::io::codec
