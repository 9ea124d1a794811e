#include "zarr/chunk_table.h"

#include <cstring>

#include "io/codec/zarr_codecs.h"

namespace cellfeed::zarr {

namespace {

constexpr uint64_t kEmpty = ~uint64_t{0};

std::string ChunkKey(const std::string& node, const ArrayMeta& m,
                     const std::vector<int64_t>& coords) {
  if (coords.empty()) return node + (m.key_prefix.empty() ? "/0" : "/c");
  std::string key = node + "/" + m.key_prefix;
  for (size_t d = 0; d < coords.size(); ++d) {
    if (d) key += m.separator;
    key += std::to_string(coords[d]);
  }
  return key;
}

int64_t CeilDiv(int64_t a, int64_t b) { return b == 0 ? 0 : (a + b - 1) / b; }

uint64_t LoadU64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

Status ReadAt(const Store& s, const KeyLocation& loc, uint64_t off, uint64_t n, void* out) {
  std::shared_ptr<const io::RandomAccessFile> f = s.main_file_ptr();
  if (s.files()) {
    CF_ASSIGN_OR_RETURN(f, s.files()->Get(loc.file));
  }
  return f->ReadAt(loc.offset + off, n, out);
}

}  // namespace

Result<io::DatasetLayout> DescribeArray(const Hierarchy& h, const std::string& node,
                                        const ArrayMeta& m) {
  Store& store = h.store();
  const std::string where = h.Where(node);
  io::DatasetLayout L;
  L.file_path = h.path();
  L.name = node;
  L.dtype = m.is_string ? DType::kUInt8 : m.dtype;
  L.shape = m.shape;
  L.chunk_shape = m.chunks;
  if (L.shape.empty()) {  // 0-d: one element
    L.shape = {1};
    L.chunk_shape = {1};
  }
  L.chunked = true;
  L.fill_value = m.is_string ? std::vector<uint8_t>{0} : m.fill_value;
  L.files = store.files();
  const size_t rank = L.shape.size();
  std::vector<int64_t> grid(rank);
  int64_t n_chunks = 1;
  for (size_t d = 0; d < rank; ++d) {
    grid[d] = CeilDiv(L.shape[d], L.chunk_shape[d]);
    n_chunks *= grid[d];
  }
  L.chunks.assign(static_cast<size_t>(n_chunks), io::ChunkLocation{});
  bool any_deflated = false;
  std::vector<bool> deflated(L.chunks.size(), false);
  const std::vector<int64_t> key_shape = m.sharded ? m.shard_shape : L.chunk_shape;
  std::vector<int64_t> key_grid(rank);
  int64_t n_keys = 1;
  for (size_t d = 0; d < rank; ++d) {
    key_grid[d] = CeilDiv(L.shape[d], key_shape[d]);
    n_keys *= key_grid[d];
  }
  for (int64_t k = 0; k < n_keys; ++k) {
    std::vector<int64_t> coords(rank);
    for (size_t d = rank, rest = static_cast<size_t>(k); d-- > 0;) {
      coords[d] = static_cast<int64_t>(rest % static_cast<size_t>(key_grid[d]));
      rest /= static_cast<size_t>(key_grid[d]);
    }
    const std::string key = ChunkKey(node, m, m.shape.empty() ? std::vector<int64_t>{} : coords);
    CF_ASSIGN_OR_RETURN(auto loc, store.Locate(key));
    if (!loc) continue;  // never written: fill value
    if (!m.sharded) {
      io::ChunkLocation& c = L.chunks[static_cast<size_t>(k)];
      c.address = loc->offset;
      c.stored_size = loc->size;
      c.file = loc->file;
      deflated[static_cast<size_t>(k)] = loc->deflated;
      any_deflated |= loc->deflated;
      continue;
    }
    // A shard: its index of (offset, nbytes) per inner chunk, C order.
    const std::string swhere = where + ": shard " + key;
    if (loc->deflated) {
      return Status::Unsupported(swhere + ": a DEFLATE-compressed shard in a zip cannot be "
                                 "read in parts; store the zip's members uncompressed (STORED, "
                                 "zarr's ZipStore default; zip -0 -r, or Python's zipfile "
                                 "with ZIP_STORED)");
    }
    std::vector<int64_t> per(rank);
    int64_t n_inner = 1;
    for (size_t d = 0; d < rank; ++d) {
      per[d] = key_shape[d] / L.chunk_shape[d];
      n_inner *= per[d];
    }
    const uint64_t index_bytes = 16 * static_cast<uint64_t>(n_inner) + (m.index_crc32c ? 4 : 0);
    if (loc->size < index_bytes) {
      return Status::Invalid(swhere + ": truncated shard index: the shard has " +
                             std::to_string(loc->size) + " bytes, its index needs " +
                             std::to_string(index_bytes));
    }
    std::vector<uint8_t> index(index_bytes);
    const uint64_t index_at = m.index_at_start ? 0 : loc->size - index_bytes;
    CF_RETURN_IF_ERROR(ReadAt(store, *loc, index_at, index_bytes, index.data()));
    if (m.index_crc32c) {
      std::vector<uint8_t> stripped;
      Status st = io::codec::VerifyCrc32c(index, stripped);
      if (!st.ok()) return Status::Invalid(swhere + ": shard index: " + st.message());
    }
    for (int64_t i = 0; i < n_inner; ++i) {
      const uint64_t off = LoadU64(&index[16 * i]), nb = LoadU64(&index[16 * i + 8]);
      if (off == kEmpty && nb == kEmpty) continue;  // empty inner chunk: fill value
      if (off > loc->size || nb > loc->size - off) {
        return Status::Invalid(swhere + ": inner chunk " + std::to_string(i) + " at bytes [" +
                               std::to_string(off) + ", +" + std::to_string(nb) +
                               ") runs past the shard's " + std::to_string(loc->size) + " bytes");
      }
      int64_t g = 0;
      bool inside = true;
      for (size_t d = 0, rest = static_cast<size_t>(i); d < rank; ++d) {
        // Local coordinate of dimension d (C order: the last varies fastest).
        size_t stride = 1;
        for (size_t e = d + 1; e < rank; ++e) stride *= static_cast<size_t>(per[e]);
        const int64_t local = static_cast<int64_t>(rest / stride);
        rest %= stride;
        const int64_t global = coords[d] * per[d] + local;
        inside &= global < grid[d];
        g = g * grid[d] + global;
      }
      if (!inside) continue;  // past the array's edge
      io::ChunkLocation& c = L.chunks[static_cast<size_t>(g)];
      c.address = loc->offset + off;
      c.stored_size = nb;
      c.file = loc->file;
    }
  }
  std::vector<io::codec::Filter> codecs = m.codecs;
  if (any_deflated) {
    // Zip members stored with DEFLATE: inflating them is the first decoding step; a
    // STORED member's chunk skips it (its filter_mask bit set).
    codecs.push_back({io::codec::kCodecRawDeflate, "zip-deflate", {}});
    const uint32_t bit = 1u << (codecs.size() - 1);
    for (size_t k = 0; k < L.chunks.size(); ++k) {
      if (!deflated[k]) L.chunks[k].filter_mask |= bit;
    }
  }
  if (codecs.size() > 31) return Status::Unsupported(where + ": more than 31 codecs");
  auto pipeline = io::codec::FilterPipeline::Make(std::move(codecs), DTypeSize(L.dtype));
  if (!pipeline.ok()) return Status::Invalid(where + ": " + pipeline.status().message());
  L.filters = std::move(pipeline).value();
  return L;
}

Result<std::vector<std::string>> ReadStringArray(const Hierarchy& h, const std::string& node,
                                                 const ArrayMeta& m) {
  const std::string where = h.Where(node);
  if (!m.is_string) return Status::Invalid(where + ": expected a string array, found " +
                                           DTypeName(m.dtype));
  if (m.shape.size() > 1) return Status::Invalid(where + ": expected a 1-D string array");
  CF_ASSIGN_OR_RETURN(io::DatasetLayout L, DescribeArray(h, node, m));
  const int64_t n = L.shape[0], per = L.chunk_shape[0];
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(n));
  std::vector<uint8_t> stored, scratch, decoded;
  std::vector<std::string> items;
  for (size_t k = 0; k < L.chunks.size(); ++k) {
    const io::ChunkLocation& c = L.chunks[k];
    const int64_t rows = std::min(per, n - static_cast<int64_t>(k) * per);
    const std::string cwhere = where + ": chunk " + std::to_string(k);
    if (c.address == io::kNoAddress) {
      out.insert(out.end(), static_cast<size_t>(rows), std::string());
      continue;
    }
    std::shared_ptr<const io::RandomAccessFile> f = h.store().main_file_ptr();
    if (L.files) {
      CF_ASSIGN_OR_RETURN(f, L.files->Get(c.file));
    }
    stored.resize(c.stored_size);
    Status st = f->ReadAt(c.address, c.stored_size, stored.data());
    if (!st.ok()) return st.WithContext(cwhere);
    st = L.filters.DecodeUnsized(stored, c.filter_mask, size_t{1} << 30, scratch, decoded);
    if (!st.ok()) return Status::Invalid(cwhere + " (" + L.filters.Describe() + "): " + st.message());
    st = io::codec::DecodeVlenUtf8(L.filters.empty() ? std::span<const uint8_t>(stored)
                                                     : std::span<const uint8_t>(decoded),
                                   0, items);
    if (!st.ok()) return Status::Invalid(cwhere + ": " + st.message());
    if (static_cast<int64_t>(items.size()) != per && static_cast<int64_t>(items.size()) != rows) {
      return Status::Invalid(cwhere + ": vlen-utf8 chunk holds " + std::to_string(items.size()) +
                             " strings, expected " + std::to_string(per));
    }
    for (int64_t i = 0; i < rows; ++i) out.push_back(std::move(items[static_cast<size_t>(i)]));
  }
  return out;
}

}  // namespace cellfeed::zarr
