// Collection::ChunkBlockStarts: blocks that follow the storage chunks of X.
//
// A block of rows costs the decoding of every chunk its values touch, however few of
// the chunk's rows it uses. Grouping rows by the chunk their values start in makes one
// block cost about one chunk, all of it used: the row that runs over into the next
// chunk needs only that chunk's first bytes, which ArrayReader inflates alone.
#include <algorithm>

#include "collection/collection_impl.h"

namespace cellfeed {

namespace {

// Values per chunk: what an unchunked (contiguous or compact) array counts as one.
constexpr int64_t kUnchunkedValues = 65536;

int64_t ValuesPerChunk(const io::DatasetLayout& L) {
  return L.chunked ? std::max<int64_t>(L.chunk_shape[0], 1) : kUnchunkedValues;
}

}  // namespace

Result<std::vector<int64_t>> Collection::ChunkBlockStarts() const {
  const Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.chunk_block_mu);
  if (m.chunk_block_starts) return *m.chunk_block_starts;
  std::vector<int64_t> starts;
  for (size_t f = 0; f < m.files.size(); ++f) {
    const auto& x = m.files[f]->matrix();
    const int64_t n = x.n_rows, first = m.offsets[f];
    if (n == 0) continue;
    if (x.encoding == anndata::MatrixEncoding::kDense) {
      const int64_t rows = x.data.chunked
                               ? std::max<int64_t>(x.data.chunk_shape[0], 1)
                               : std::max<int64_t>(kUnchunkedValues / std::max<int64_t>(x.n_cols, 1), 1);
      for (int64_t r = 0; r < n; r += rows) starts.push_back(first + r);
      continue;
    }
    const int64_t per = std::max(ValuesPerChunk(x.data), ValuesPerChunk(x.indices));
    CF_ASSIGN_OR_RETURN(auto indptr,
                        io::ReadRange<int64_t>(x.indptr, m.files[f]->file(), 0, n + 1, *m.pool));
    starts.push_back(first);
    for (int64_t r = 1; r < n; ++r) {
      if (indptr[r] / per != indptr[r - 1] / per) starts.push_back(first + r);
    }
  }
  m.chunk_block_starts = starts;
  return starts;
}

}  // namespace cellfeed
