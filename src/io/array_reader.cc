#include "io/array_reader.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <sys/uio.h>
#include <type_traits>

namespace cellfeed::io {

namespace {

// Pieces merged into one pread when the hole between them is at most this many bytes:
// one page, which the kernel reads from disk anyway. Larger holes cost more to copy out
// of the page cache (into junk) than a second pread costs: with 64 KiB, a random 46%
// subset of uncompressed rows (holes of a row or two, ~5.5 KB each per array) read at
// 0.61-0.67x of the unfiltered loader, with 4 KiB at 0.83-0.87x (bench/corpus_bench.py,
// 300k cells, alternating processes, 2026-12-02).
constexpr uint64_t kMergeHoleBytes = 4096;
// Read-ahead advice (cold files) still covers holes up to 64 KiB: one advised range
// instead of many, and the disk reads them at little extra cost.
constexpr uint64_t kAdviseHoleBytes = 64 * 1024;
// A deflate chunk whose pieces all lie in its first 1/kPrefixDivisor is inflated only up
// to the last byte they need: zlib's streaming inflate (which can stop early) costs 2-3x
// libdeflate's whole-chunk inflate per byte on single-cell data, so stopping early pays
// below about a third of the chunk. A blosc chunk (decoded by blocks, then copied) uses the
// same bound; what it saves most is a CSR row's tail at the start of the next chunk.
constexpr uint64_t kPrefixDivisor = 3;
// Unfiltered arrays read through a cache are kept in pages of this many bytes.
constexpr int64_t kCachePageBytes = 4096;

struct ChunkTask {
  const ArrayRead* read;
  int64_t chunk_row;       // index along dim 0 of the chunk grid
  size_t begin, end;       // range in the request's split pieces
};

struct SplitRead {
  const ArrayRead* read;
  std::vector<Piece> pieces;  // sorted by src, none crossing a chunk row boundary
};

struct Buffers {
  std::vector<uint8_t> stored, scratch, decoded;
};

Buffers& ThreadBuffers() {
  thread_local Buffers b;
  return b;
}

std::string ChunkWhere(const DatasetLayout& L, int64_t chunk) {
  return L.Where() + ": chunk " + std::to_string(chunk);
}

// Index of the first value outside [0, bound) in n stored elements, or -1.
int64_t FirstOutside(DType t, const uint8_t* p, size_t n, int64_t bound) {
  switch (t) {
    case DType::kInt8: return FirstOutsideRange(reinterpret_cast<const int8_t*>(p), n, bound);
    case DType::kInt16: return FirstOutsideRange(reinterpret_cast<const int16_t*>(p), n, bound);
    case DType::kInt32: return FirstOutsideRange(reinterpret_cast<const int32_t*>(p), n, bound);
    case DType::kInt64: return FirstOutsideRange(reinterpret_cast<const int64_t*>(p), n, bound);
    case DType::kUInt8: return FirstOutsideRange(reinterpret_cast<const uint8_t*>(p), n, bound);
    case DType::kUInt16: return FirstOutsideRange(reinterpret_cast<const uint16_t*>(p), n, bound);
    case DType::kUInt32: return FirstOutsideRange(reinterpret_cast<const uint32_t*>(p), n, bound);
    case DType::kUInt64: return FirstOutsideRange(reinterpret_cast<const uint64_t*>(p), n, bound);
    default: return -1;  // floats are not range-checked
  }
}

std::string ValueAt(DType t, const uint8_t* p) {
  int64_t v = 0;
  if (t == DType::kUInt64) {
    uint64_t u;
    std::memcpy(&u, p, 8);
    return std::to_string(u);
  }
  ConvertElements(t, p, DType::kInt64, &v, 1);
  return std::to_string(v);
}

// Checks a piece's stored values against the read's bound.
Status CheckPiece(const ArrayRead& r, const uint8_t* src, const Piece& p) {
  const int64_t first_row = p.src, count = p.count;
  if (r.valid_below < 0) return Status::OK();
  const DatasetLayout& L = *r.layout;
  const size_t es = DTypeSize(L.dtype);
  const int64_t bad = FirstOutside(L.dtype, src, static_cast<size_t>(count), r.valid_below);
  if (bad < 0) return Status::OK();
  return Status::Invalid("value " + ValueAt(L.dtype, src + bad * es) +
                         " at element " + std::to_string(first_row + bad) +
                         (p.tag >= 0 ? " (row " + std::to_string(p.tag) + ")" : std::string()) +
                         " is outside [0, " + std::to_string(r.valid_below) + ")");
}

// Checks `count` output values of a piece (float32 outputs only) against r.value_check.
Status CheckValues(const ArrayRead& r, const uint8_t* out, int64_t count, const Piece& p,
                   int64_t first_element) {
  if (r.value_check == ValueCheck::kNone || r.out_type != DType::kFloat32) return Status::OK();
  const float* v = reinterpret_cast<const float*>(out);
  const int64_t bad = FirstBadValue(v, static_cast<size_t>(count), r.value_check);
  if (bad < 0) return Status::OK();
  char value[32];
  std::snprintf(value, sizeof value, "%g", static_cast<double>(v[bad]));
  return Status::Invalid(std::string("value ") + value + " at element " +
                         std::to_string(first_element + bad) +
                         (p.tag >= 0 ? " (row " + std::to_string(p.tag) + ")" : std::string()) +
                         " " + BadValueReason(v[bad]) + "; expected " +
                         (r.value_check == ValueCheck::kCounts
                              ? "counts (finite, >= 0, whole numbers)"
                              : "finite values") +
                         " (values='" + ValueCheckName(r.value_check) +
                         "'; open with values='any' to accept them)");
}

// Copies rows of one decoded chunk (rows x cols elements, row-major) into the output.
Status ScatterRows(const ArrayRead& r, const uint8_t* chunk, int64_t chunk_row0, int64_t chunk_col0,
                   int64_t chunk_cols, int64_t col_count, const Piece* begin, const Piece* end) {
  const DatasetLayout& L = *r.layout;
  const size_t in_size = DTypeSize(L.dtype);
  const size_t out_size = DTypeSize(r.out_type);
  const int64_t width = L.row_elements();
  auto* out = static_cast<uint8_t*>(r.out);
  for (const Piece* p = begin; p != end; ++p) {
    if (width == 1) {  // 1-D: the whole piece is one contiguous run
      const uint8_t* s = chunk + (p->src - chunk_row0) * in_size;
      CF_RETURN_IF_ERROR(CheckPiece(r, s, *p));
      ConvertElements(L.dtype, s, r.out_type, out + p->dst * out_size,
                      static_cast<size_t>(p->count));
      CF_RETURN_IF_ERROR(CheckValues(r, out + p->dst * out_size, p->count, *p, p->src));
      continue;
    }
    for (int64_t k = 0; k < p->count; ++k) {
      const uint8_t* s = chunk + ((p->src + k - chunk_row0) * chunk_cols) * in_size;
      uint8_t* d = out + ((p->dst + k) * width + chunk_col0) * out_size;
      ConvertElements(L.dtype, s, r.out_type, d, static_cast<size_t>(col_count));
      const Piece row{p->src + k, 1, p->dst + k, p->src + k};
      CF_RETURN_IF_ERROR(CheckValues(r, d, col_count, row, (p->src + k) * width + chunk_col0));
    }
  }
  return Status::OK();
}

void FillRows(const ArrayRead& r, int64_t col0, int64_t col_count, const Piece* begin,
              const Piece* end) {
  const DatasetLayout& L = *r.layout;
  const size_t out_size = DTypeSize(r.out_type);
  const int64_t width = L.row_elements();
  std::vector<uint8_t> one(out_size);
  ConvertElements(L.dtype, L.fill_value.data(), r.out_type, one.data(), 1);
  auto* out = static_cast<uint8_t*>(r.out);
  for (const Piece* p = begin; p != end; ++p) {
    for (int64_t k = 0; k < p->count; ++k) {
      uint8_t* d = out + ((p->dst + k) * width + col0) * out_size;
      for (int64_t c = 0; c < col_count; ++c) std::memcpy(d + c * out_size, one.data(), out_size);
    }
  }
}

// Reads a run of pieces (sorted by src, no overlaps) with one scatter read: each piece
// into its output slot, the holes between them into `junk`. False (nothing read) when
// pieces overlap, e.g. a row requested twice: the caller then reads via a scratch copy.
bool ScatterRead(const ArrayRead& r, const RandomAccessFile& file, uint64_t offset, int64_t lo, const Piece* begin,
                 const Piece* end, std::vector<struct iovec>& iov, std::vector<uint8_t>& junk) {
  const size_t esize = DTypeSize(r.layout->dtype);
  auto* out = static_cast<uint8_t*>(r.out);
  iov.clear();
  int64_t at = lo;
  size_t max_hole = 0;
  for (const Piece* p = begin; p != end; ++p) {
    if (p->src < at) return false;
    max_hole = std::max(max_hole, static_cast<size_t>(p->src - at) * esize);
    at = p->src + p->count;
  }
  junk.resize(std::max(junk.size(), max_hole));
  at = lo;
  for (const Piece* p = begin; p != end; ++p) {
    if (p->src > at) iov.push_back({junk.data(), static_cast<size_t>(p->src - at) * esize});
    iov.push_back({out + p->dst * esize, static_cast<size_t>(p->count) * esize});
    at = p->src + p->count;
  }
  return file.ReadAtV(offset, iov).ok() || (iov.clear(), false);
}

// Unfiltered 1-D chunk: read just the byte ranges the pieces need.
Status ReadUnfilteredRanges(const ArrayRead& r, const RandomAccessFile& file,
                            const ChunkLocation& loc, int64_t chunk_row0,
                            const Piece* begin, const Piece* end, ReadStats* stats) {
  const DatasetLayout& L = *r.layout;
  const size_t esize = DTypeSize(L.dtype);
  const size_t out_size = DTypeSize(r.out_type);
  auto* out = static_cast<uint8_t*>(r.out);
  Buffers& buf = ThreadBuffers();
  const Piece* run = begin;
  const bool direct = r.out_type == L.dtype && !r.discard_output;
  std::vector<struct iovec> iov;
  // A mapped file has no cost per read to save: only touching pieces are merged.
  const uint64_t merge_hole = file.mapped() ? 0 : kMergeHoleBytes;
  while (run != end) {
    // Extend the run while the next piece starts close after the furthest end so far.
    int64_t lo = run->src, hi = run->src + run->count;
    const Piece* stop = run + 1;
    while (stop != end &&
           static_cast<uint64_t>(std::max<int64_t>(stop->src - hi, 0)) * esize <= merge_hole) {
      hi = std::max(hi, stop->src + stop->count);
      ++stop;
    }
    const uint64_t offset = loc.address + static_cast<uint64_t>(lo - chunk_row0) * esize;
    const uint64_t bytes = static_cast<uint64_t>(hi - lo) * esize;
    if (direct && ScatterRead(r, file, offset, lo, run, stop, iov, buf.stored)) {
      // Pieces landed in the output directly; check them there.
      for (const Piece* p = run; p != stop; ++p) {
        CF_RETURN_IF_ERROR(CheckPiece(r, out + p->dst * out_size, *p));
        CF_RETURN_IF_ERROR(CheckValues(r, out + p->dst * out_size, p->count, *p, p->src));
      }
      if (stats) {
        stats->bytes_read += static_cast<int64_t>(bytes);
        stats->bytes_decoded += static_cast<int64_t>(bytes);
      }
      run = stop;
      continue;
    }
    buf.stored.resize(bytes);
    Status st = file.ReadAt(offset, bytes, buf.stored.data());
    if (!st.ok()) return st;
    if (stats) {
      stats->bytes_read += static_cast<int64_t>(bytes);
      stats->bytes_decoded += static_cast<int64_t>(bytes);
    }
    if (r.discard_output) {
      run = stop;
      continue;
    }
    for (const Piece* p = run; p != stop; ++p) {
      const uint8_t* s = buf.stored.data() + (p->src - lo) * esize;
      CF_RETURN_IF_ERROR(CheckPiece(r, s, *p));
      ConvertElements(L.dtype, s, r.out_type, out + p->dst * out_size,
                      static_cast<size_t>(p->count));
      CF_RETURN_IF_ERROR(CheckValues(r, out + p->dst * out_size, p->count, *p, p->src));
    }
    run = stop;
  }
  return Status::OK();
}

// Rows [row0, row0 + rows) of an unfiltered 1-D chunk: its cached pages.
struct ChunkPages {
  int64_t row0, rows, per_page;
  int64_t page_of(int64_t row) const { return (row - row0) / per_page; }
  int64_t first_row(int64_t page) const { return row0 + page * per_page; }
  int64_t rows_in(int64_t page) const { return std::min(per_page, row0 + rows - first_row(page)); }
};

ChunkPages PagesOf(const DatasetLayout& L, int64_t chunk_row0) {
  return {chunk_row0, std::min(L.chunk_shape[0], L.shape[0] - chunk_row0),
          std::max<int64_t>(1, kCachePageBytes / static_cast<int64_t>(DTypeSize(L.dtype)))};
}

// Unfiltered 1-D chunk read through the cache: pieces are served from cached pages, a
// missing page is read whole and kept.
Status ReadCachedPages(const ArrayRead& r, const RandomAccessFile& file, const ChunkLocation& loc,
                       int64_t chunk_index,
                       int64_t chunk_row0, const Piece* begin, const Piece* end,
                       ReadStats* stats) {
  const DatasetLayout& L = *r.layout;
  const size_t esize = DTypeSize(L.dtype);
  const size_t out_size = DTypeSize(r.out_type);
  auto* out = static_cast<uint8_t*>(r.out);
  const ChunkPages pages = PagesOf(L, chunk_row0);
  for (const Piece* p = begin; p != end; ++p) {
    for (int64_t row = p->src; row < p->src + p->count;) {
      const int64_t page = pages.page_of(row), page_row0 = pages.first_row(page);
      ChunkCache::Bytes bytes = r.cache->Find(&L, chunk_index, page);
      if (!bytes) {
        auto read = std::make_shared<std::vector<uint8_t>>(
            static_cast<size_t>(pages.rows_in(page)) * esize);
        CF_RETURN_IF_ERROR(file.ReadAt(
            loc.address + static_cast<uint64_t>(page_row0 - chunk_row0) * esize, read->size(),
            read->data()));
        if (stats) {
          stats->bytes_read += static_cast<int64_t>(read->size());
          stats->bytes_decoded += static_cast<int64_t>(read->size());
        }
        r.cache->Insert(&L, chunk_index, page, read);
        bytes = std::move(read);
      }
      const int64_t n = std::min(p->src + p->count, page_row0 + pages.rows_in(page)) - row;
      if (!r.discard_output) {
        const Piece part{row, n, p->dst + (row - p->src), p->tag};
        const uint8_t* s = bytes->data() + static_cast<size_t>(row - page_row0) * esize;
        uint8_t* d = out + part.dst * out_size;
        CF_RETURN_IF_ERROR(CheckPiece(r, s, part));
        ConvertElements(L.dtype, s, r.out_type, d, static_cast<size_t>(n));
        CF_RETURN_IF_ERROR(CheckValues(r, d, n, part, row));
      }
      row += n;
    }
  }
  return Status::OK();
}

// Bytes to inflate of a chunk whose pieces need only its start, or 0 to decode it whole
// (cached arrays keep whole chunks; only deflate-only and blosc-only chunks can stop early:
// a blosc chunk decodes just the blosc blocks that hold the prefix).
uint64_t PrefixToInflate(const ArrayRead& r, const ChunkLocation& loc, int64_t chunk_row0,
                         int64_t chunk_cols, const Piece* begin, const Piece* end) {
  const DatasetLayout& L = *r.layout;
  if (!r.decode_prefix || r.cache || !L.filters.CanDecodePrefix(loc.filter_mask)) return 0;
  int64_t last_row = chunk_row0;
  for (const Piece* p = begin; p != end; ++p) last_row = std::max(last_row, p->src + p->count);
  const uint64_t need = static_cast<uint64_t>(last_row - chunk_row0) *
                        static_cast<uint64_t>(chunk_cols) * DTypeSize(L.dtype);
  return need * kPrefixDivisor <= L.chunk_bytes() ? need : 0;
}

Status RunTask(const ChunkTask& t, const SplitRead& split, ReadStats* stats) {
  const ArrayRead& r = *t.read;
  const DatasetLayout& L = *r.layout;
  const Piece* begin = split.pieces.data() + t.begin;
  const Piece* end = split.pieces.data() + t.end;
  const int64_t rows_per_chunk = L.chunk_shape[0];
  const int64_t chunk_row0 = t.chunk_row * rows_per_chunk;
  const bool two_d = L.shape.size() > 1;
  const int64_t width = L.row_elements();

  if (!L.compact_bytes.empty()) {
    if (r.discard_output) return Status::OK();
    return ScatterRows(r, L.compact_bytes.data(), 0, 0, width, width, begin, end)
        .WithContext(L.Where());
  }
  const int64_t col_chunks = two_d ? L.num_chunks_along(1) : 1;
  const int64_t chunk_cols = two_d ? L.chunk_shape[1] : 1;
  for (int64_t j = 0; j < col_chunks; ++j) {
    const int64_t chunk_index = t.chunk_row * col_chunks + j;
    const ChunkLocation& loc = L.chunks[static_cast<size_t>(chunk_index)];
    const int64_t col0 = j * chunk_cols;
    const int64_t col_count = std::min(chunk_cols, width - col0);
    if (loc.address == kNoAddress) {
      if (r.discard_output || begin == end) continue;
      FillRows(r, col0, col_count, begin, end);
      // A fill value (zarr's may be NaN) passes the same value checks as stored values.
      const size_t os = DTypeSize(r.out_type);
      const uint8_t* first = static_cast<const uint8_t*>(r.out) + (begin->dst * width + col0) * os;
      Status st = CheckValues(r, first, width == 1 ? 1 : col_count, *begin,
                              begin->src * width + col0);
      if (!st.ok()) return Status(st.code(), ChunkWhere(L, chunk_index) + " (never written: the "
                                                 "fill value): " + st.message());
      continue;
    }
    if (stats) ++stats->chunks;
    // The file holding the chunk: the read's, or one of the store's many (zarr).
    std::shared_ptr<const RandomAccessFile> holder;
    const RandomAccessFile* file = r.file;
    if (L.files) {
      auto got = L.files->Get(loc.file);
      if (!got.ok()) return got.status().WithContext(ChunkWhere(L, chunk_index));
      holder = std::move(got).value();
      file = holder.get();
    }
    if (loc.address + loc.stored_size > file->size_at_open()) {
      return Status::IOError(ChunkWhere(L, chunk_index) + " at byte " +
                             std::to_string(loc.address) + " (+" +
                             std::to_string(loc.stored_size) + ") lies past the end of the file (" +
                             std::to_string(file->size_at_open()) + " bytes): truncated?");
    }
    const bool unfiltered = L.filters.empty();
    if (unfiltered && !two_d) {
      Status st = r.cache
                      ? ReadCachedPages(r, *file, loc, chunk_index, chunk_row0, begin, end, stats)
                      : ReadUnfilteredRanges(r, *file, loc, chunk_row0, begin, end, stats);
      if (!st.ok()) return st.WithContext(ChunkWhere(L, chunk_index));
      continue;
    }
    if (r.cache && !unfiltered) {
      if (ChunkCache::Bytes hit = r.cache->Find(&L, chunk_index)) {
        if (r.discard_output) continue;
        Status st = ScatterRows(r, hit->data(), chunk_row0, col0, chunk_cols, col_count, begin, end);
        if (!st.ok()) return Status(st.code(), ChunkWhere(L, chunk_index) + ": " + st.message());
        continue;
      }
    }
    Buffers& buf = ThreadBuffers();
    buf.stored.resize(loc.stored_size);
    Status st = file->ReadAt(loc.address, loc.stored_size, buf.stored.data());
    if (!st.ok()) return st.WithContext(ChunkWhere(L, chunk_index));
    const uint8_t* chunk = buf.stored.data();
    uint64_t decoded = loc.stored_size;  // bytes the decoders produced
    if (!unfiltered) {
      const uint64_t prefix = PrefixToInflate(r, loc, chunk_row0, chunk_cols, begin, end);
      st = prefix ? L.filters.DecodePrefix(buf.stored, loc.filter_mask, prefix, L.chunk_bytes(),
                                           buf.decoded)
                  : L.filters.Decode(buf.stored, loc.filter_mask, L.chunk_bytes(), buf.scratch,
                                     buf.decoded);
      if (!st.ok()) {
        return Status(StatusCode::kInvalid, ChunkWhere(L, chunk_index) + " (" +
                                                L.filters.Describe() + "): " + st.message());
      }
      chunk = buf.decoded.data();
      decoded = prefix ? prefix : L.chunk_bytes();
      if (r.cache) {  // PrefixToInflate is 0 for cached arrays: the chunk is whole
        r.cache->Insert(&L, chunk_index, std::make_shared<const std::vector<uint8_t>>(buf.decoded));
      }
    } else if (loc.stored_size < static_cast<uint64_t>(std::min(rows_per_chunk, L.shape[0] - chunk_row0) *
                                                       chunk_cols) * DTypeSize(L.dtype)) {
      return Status::Invalid(ChunkWhere(L, chunk_index) + ": stored size " +
                             std::to_string(loc.stored_size) + " is smaller than the chunk");
    }
    if (stats) {
      stats->bytes_read += static_cast<int64_t>(loc.stored_size);
      stats->bytes_decoded += static_cast<int64_t>(decoded);
    }
    if (r.discard_output) continue;
    st = ScatterRows(r, chunk, chunk_row0, col0, chunk_cols, col_count, begin, end);
    if (!st.ok()) return Status(st.code(), ChunkWhere(L, chunk_index) + ": " + st.message());
  }
  return Status::OK();
}

// The byte ranges the tasks will read: exact ranges of unfiltered 1-D pieces, whole
// stored chunks otherwise (minus those the decoded-chunk cache holds). With `probes`,
// only the first range of kColdProbes evenly spaced tasks: a warm read's whole cost.
std::vector<ByteRange> RangesToRead(const std::vector<ChunkTask>& tasks,
                                    const std::vector<SplitRead>& splits,
                                    std::span<ArrayRead> reads, bool probes,
                                    std::vector<std::shared_ptr<const RandomAccessFile>>& keep) {
  std::vector<ByteRange> ranges;
  // The file holding a chunk; null (no advice) where it cannot be opened: the read reports it.
  auto file_of = [&](const ArrayRead& r, const ChunkLocation& loc) -> const RandomAccessFile* {
    if (!r.layout->files) return r.file;
    auto got = r.layout->files->Get(loc.file);
    if (!got.ok()) return nullptr;
    keep.push_back(std::move(got).value());
    return keep.back().get();
  };
  const size_t step = probes ? std::max<size_t>(1, tasks.size() / kColdProbes) : 1;
  for (size_t i = 0; i < tasks.size(); i += step) {
    const ChunkTask& t = tasks[i];
    const ArrayRead& r = *t.read;
    const DatasetLayout& L = *r.layout;
    if (!L.compact_bytes.empty()) continue;
    const size_t first = ranges.size();
    const bool two_d = L.shape.size() > 1;
    if (L.filters.empty() && !two_d) {
      const ChunkLocation& loc = L.chunks[static_cast<size_t>(t.chunk_row)];
      if (loc.address == kNoAddress) continue;
      const RandomAccessFile* file = file_of(r, loc);
      if (file == nullptr) continue;
      const SplitRead& s = splits[static_cast<size_t>(t.read - reads.data())];
      const uint64_t es = DTypeSize(L.dtype);
      const int64_t row0 = t.chunk_row * L.chunk_shape[0];
      if (r.cache) {  // whole pages, those the cache lacks
        const ChunkPages pages = PagesOf(L, row0);
        int64_t last = -1;
        for (size_t k = t.begin; k < t.end && !(probes && ranges.size() > first); ++k) {
          const Piece& p = s.pieces[k];
          for (int64_t g = pages.page_of(p.src); g <= pages.page_of(p.src + p.count - 1); ++g) {
            if (g == last || r.cache->Find(&L, t.chunk_row, g)) continue;
            last = g;
            const uint64_t b = loc.address + static_cast<uint64_t>(pages.first_row(g) - row0) * es;
            ranges.push_back({file, b, b + static_cast<uint64_t>(pages.rows_in(g)) * es});
          }
        }
        continue;
      }
      for (size_t k = t.begin; k < t.end && !(probes && ranges.size() > first); ++k) {
        const Piece& p = s.pieces[k];
        const uint64_t b = loc.address + static_cast<uint64_t>(p.src - row0) * es;
        ranges.push_back({file, b, b + static_cast<uint64_t>(p.count) * es});
      }
      continue;
    }
    const int64_t col_chunks = two_d ? L.num_chunks_along(1) : 1;
    for (int64_t j = 0; j < col_chunks && !(probes && ranges.size() > first); ++j) {
      const int64_t c = t.chunk_row * col_chunks + j;
      const ChunkLocation& loc = L.chunks[static_cast<size_t>(c)];
      if (loc.address == kNoAddress || (r.cache && r.cache->Find(&L, c))) continue;
      const RandomAccessFile* file = file_of(r, loc);
      if (file == nullptr) continue;
      ranges.push_back({file, loc.address, loc.address + loc.stored_size});
    }
  }
  return ranges;
}

}  // namespace

Status ReadArrays(std::span<ArrayRead> reads, util::ThreadPool& pool, ReadStats* stats,
                  util::ThreadPool* when_cold) {
  std::vector<SplitRead> splits(reads.size());
  std::vector<ChunkTask> tasks;
  for (size_t i = 0; i < reads.size(); ++i) {
    const ArrayRead& r = reads[i];
    const DatasetLayout& L = *r.layout;
    SplitRead& s = splits[i];
    s.read = &r;
    const int64_t n = L.length();
    const int64_t per = L.compact_bytes.empty() ? L.chunk_shape[0] : std::max<int64_t>(n, 1);
    std::vector<Piece> sorted = r.pieces;
    std::sort(sorted.begin(), sorted.end(),
              [](const Piece& a, const Piece& b) { return a.src < b.src; });
    for (const Piece& p : sorted) {
      if (p.count == 0) continue;
      if (p.src < 0 || p.count < 0 || p.src + p.count > n) {
        return Status::Invalid(L.Where() + ": rows [" + std::to_string(p.src) + ", " +
                               std::to_string(p.src + p.count) + ") outside the array of " +
                               std::to_string(n));
      }
      int64_t src = p.src, dst = p.dst, left = p.count;
      while (left > 0) {  // split at chunk boundaries
        const int64_t in_chunk = std::min(left, per - src % per);
        s.pieces.push_back({src, in_chunk, dst, p.tag});
        src += in_chunk;
        dst += in_chunk;
        left -= in_chunk;
      }
    }
    // Sub-pieces of one chunk row are adjacent after a stable sort by chunk row.
    std::stable_sort(s.pieces.begin(), s.pieces.end(),
                     [per](const Piece& a, const Piece& b) { return a.src / per < b.src / per; });
    for (size_t b = 0; b < s.pieces.size();) {
      const int64_t chunk_row = s.pieces[b].src / per;
      size_t e = b + 1;
      while (e < s.pieces.size() && s.pieces[e].src / per == chunk_row) ++e;
      tasks.push_back({&r, L.compact_bytes.empty() ? chunk_row : 0, b, e});
      b = e;
    }
  }
  util::ThreadPool* run_on = &pool;
  std::vector<std::shared_ptr<const RandomAccessFile>> keep;  // files the ranges point into
  if (AnyUncached(RangesToRead(tasks, splits, reads, /*probes=*/true, keep))) {
    Advise(RangesToRead(tasks, splits, reads, /*probes=*/false, keep), kAdviseHoleBytes);
    if (when_cold) run_on = when_cold;
  }
  // Tasks refer to splits by their read; map back through the index.
  return run_on->ParallelFor(tasks.size(), [&](size_t k) {
    const ChunkTask& t = tasks[k];
    const SplitRead& s = splits[static_cast<size_t>(t.read - reads.data())];
    return RunTask(t, s, stats);
  });
}

}  // namespace cellfeed::io
