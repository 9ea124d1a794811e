// Reading rows of a collection as one float32 CSR matrix.
//
// 1. Rows are grouped by file; each file's distinct rows are sorted, and their indptr
//    entries read (runs of consecutive rows share entries).
// 2. indptr is validated (non-decreasing, within nnz) and the output indptr laid out in
//    request order; dense files are read first since their row lengths need the values.
// 3. data and indices of every CSR file are read in one parallel pass: each chunk is
//    fetched and decoded once, its pieces converted straight into the output arrays.
// 4. indices are checked against the file's n_vars while decoding, so a corrupt file
//    cannot yield a bad matrix; then files whose genes differ from the collection's are mapped onto its gene
//    space (dropped genes removed, rows kept sorted by column).
#include <algorithm>
#include <numeric>

#include "collection/collection_impl.h"
#include "h5ad/column_reader.h"
#include "io/array_reader.h"

namespace cellfeed {

namespace {

std::vector<const anndata::MatrixLayout*> Matrices(const Collection::Impl& impl) {
  std::vector<const anndata::MatrixLayout*> out;
  for (const auto& f : impl.files) out.push_back(&f->matrix());
  return out;
}

}  // namespace

Status ReadRowExtents(const Collection::Impl& impl,
                      std::span<const anndata::MatrixLayout* const> matrices, const RowsByFile& g,
                      std::vector<FileRows>& out, io::ReadStats* stats, util::ThreadPool& pool) {
  std::vector<io::ArrayRead> reads;
  std::vector<std::vector<int64_t>> bufs(impl.files.size());
  std::vector<std::vector<int64_t>> run_of(impl.files.size());  // buffer offset per unique row
  for (size_t f = 0; f < impl.files.size(); ++f) {
    const auto& m = *matrices[f];
    FileRows& fr = out[f];
    fr.unique = g.local[f];
    std::sort(fr.unique.begin(), fr.unique.end());
    fr.unique.erase(std::unique(fr.unique.begin(), fr.unique.end()), fr.unique.end());
    if (fr.unique.empty() || m.encoding != anndata::MatrixEncoding::kCsr) continue;
    std::vector<io::Piece> pieces;
    int64_t used = 0;
    for (size_t i = 0; i < fr.unique.size(); ++i) {
      const int64_t r = fr.unique[i];
      if (i > 0 && fr.unique[i - 1] == r - 1) {  // extends the run: one more entry
        ++pieces.back().count;
        run_of[f].push_back(used - 1);
        ++used;
      } else {
        pieces.push_back({r, 2, used});
        run_of[f].push_back(used);
        used += 2;
      }
    }
    bufs[f].resize(static_cast<size_t>(used));
    reads.push_back({&m.indptr, &impl.files[f]->file(), std::move(pieces), DType::kInt64,
                     bufs[f].data(), -1, false, impl.indptr_cache.get()});
  }
  CF_RETURN_IF_ERROR(io::ReadArrays(reads, pool, stats, impl.pool.get()));
  for (size_t f = 0; f < impl.files.size(); ++f) {
    const auto& m = *matrices[f];
    if (m.encoding != anndata::MatrixEncoding::kCsr) continue;
    FileRows& fr = out[f];
    fr.start.resize(fr.unique.size());
    fr.end.resize(fr.unique.size());
    for (size_t i = 0; i < fr.unique.size(); ++i) {
      const int64_t s = bufs[f][run_of[f][i]], e = bufs[f][run_of[f][i] + 1];
      if (s > e || s < 0 || e > m.nnz()) {
        return Status::Invalid(m.indptr.Where() + ": row " + std::to_string(fr.unique[i]) +
                               " spans [" + std::to_string(s) + ", " + std::to_string(e) +
                               "), expected a non-decreasing indptr within [0, nnz = " +
                               std::to_string(m.nnz()) + "]");
      }
      fr.start[i] = s;
      fr.end[i] = e;
    }
  }
  return Status::OK();
}

size_t UniqueIndex(const FileRows& fr, int64_t row) {
  return static_cast<size_t>(std::lower_bound(fr.unique.begin(), fr.unique.end(), row) -
                             fr.unique.begin());
}

namespace {

// Maps file-local gene indices onto the collection's genes, compacting in place (the
// write position never passes the read position).
void MapGenes(const Collection::Impl& impl, const RowsByFile& g, CsrMatrix& out) {
  bool any = false;
  for (const auto& m : impl.gene_maps) any = any || !m.empty();
  if (!any) return;
  std::vector<const std::vector<int32_t>*> map_of(static_cast<size_t>(out.n_rows), nullptr);
  std::vector<bool> sort_row(static_cast<size_t>(out.n_rows), false);
  for (size_t f = 0; f < impl.files.size(); ++f) {
    if (impl.gene_maps[f].empty()) continue;
    for (int64_t pos : g.positions[f]) {
      map_of[pos] = &impl.gene_maps[f];
      sort_row[pos] = !impl.gene_order_preserving[f];
    }
  }
  std::vector<std::pair<int32_t, float>> row;
  int64_t w = 0;
  for (int64_t pos = 0; pos < out.n_rows; ++pos) {
    const int64_t begin = out.indptr[pos], end = out.indptr[pos + 1];
    out.indptr[pos] = w;
    const std::vector<int32_t>* map = map_of[pos];
    if (!map) {
      for (int64_t o = begin; o < end; ++o, ++w) {
        out.indices[w] = out.indices[o];
        out.data[w] = out.data[o];
      }
      continue;
    }
    if (!sort_row[pos]) {
      for (int64_t o = begin; o < end; ++o) {
        const int32_t c = (*map)[static_cast<size_t>(out.indices[o])];
        if (c >= 0) {
          out.indices[w] = c;
          out.data[w++] = out.data[o];
        }
      }
      continue;
    }
    row.clear();
    for (int64_t o = begin; o < end; ++o) {
      const int32_t c = (*map)[static_cast<size_t>(out.indices[o])];
      if (c >= 0) row.emplace_back(c, out.data[o]);
    }
    std::sort(row.begin(), row.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [c, v] : row) {
      out.indices[w] = c;
      out.data[w++] = v;
    }
  }
  out.indptr[out.n_rows] = w;
  out.indices.resize(static_cast<size_t>(w));
  out.data.resize(static_cast<size_t>(w));
}

}  // namespace

Status PlanDecodeOnly(const Collection::Impl& impl, std::span<const int64_t> rows,
                      std::vector<io::ArrayRead>& reads) {
  RowsByFile g = GroupRowsByFile(impl, rows);
  std::vector<FileRows> fr(impl.files.size());
  CF_RETURN_IF_ERROR(ReadRowExtents(impl, Matrices(impl), g, fr, nullptr, *impl.pool));
  for (size_t f = 0; f < impl.files.size(); ++f) {
    const auto& m = impl.files[f]->matrix();
    if (fr[f].unique.empty()) continue;
    if (m.encoding == anndata::MatrixEncoding::kDense) {
      reads.push_back({&m.data, &impl.files[f]->file(), h5ad::RowPieces(fr[f].unique),
                       DType::kFloat32, nullptr, -1, true});
      continue;
    }
    std::vector<io::Piece> pieces;
    for (size_t u = 0; u < fr[f].unique.size(); ++u) {
      pieces.push_back({fr[f].start[u], fr[f].end[u] - fr[f].start[u], 0});
    }
    reads.push_back({&m.data, &impl.files[f]->file(), pieces, DType::kFloat32, nullptr, -1, true});
    reads.push_back({&m.indices, &impl.files[f]->file(), std::move(pieces), DType::kInt32, nullptr,
                     -1, true});
  }
  for (io::ArrayRead& r : reads) r.decode_prefix = impl.decode_prefix;
  return Status::OK();
}

Status ReadCsrRows(const Collection::Impl& impl, std::span<const int64_t> rows, CsrMatrix& out,
                   util::ThreadPool& pool) {
  const size_t nfiles = impl.files.size();
  const int64_t n_cols = impl.n_vars();
  RowsByFile g = GroupRowsByFile(impl, rows);
  for (size_t f = 0; f < nfiles; ++f) {
    if (!g.positions[f].empty()) CF_RETURN_IF_ERROR(impl.files[f]->file().CheckUnchanged());
  }
  std::vector<FileRows> fr(nfiles);
  CF_RETURN_IF_ERROR(ReadRowExtents(impl, Matrices(impl), g, fr, nullptr, pool));

  // Dense files: read their distinct rows now; their lengths are their nonzero counts.
  std::vector<std::vector<float>> dense(nfiles);
  std::vector<io::ArrayRead> dense_reads;
  for (size_t f = 0; f < nfiles; ++f) {
    const auto& m = impl.files[f]->matrix();
    if (m.encoding != anndata::MatrixEncoding::kDense || fr[f].unique.empty()) continue;
    dense[f].resize(fr[f].unique.size() * static_cast<size_t>(m.n_cols));
    dense_reads.push_back({&m.data, &impl.files[f]->file(), h5ad::RowPieces(fr[f].unique),
                           DType::kFloat32, dense[f].data()});
    dense_reads.back().decode_prefix = impl.decode_prefix;
    dense_reads.back().value_check = impl.value_check;
  }
  CF_RETURN_IF_ERROR(io::ReadArrays(dense_reads, pool, nullptr, impl.pool.get()));

  // Output layout in request order.
  out.n_rows = static_cast<int64_t>(rows.size());
  out.n_cols = n_cols;
  out.indptr.assign(rows.size() + 1, 0);
  std::vector<size_t> uidx(rows.size());  // position -> index into its file's unique rows
  for (size_t f = 0; f < nfiles; ++f) {
    const bool csr = impl.files[f]->matrix().encoding == anndata::MatrixEncoding::kCsr;
    for (size_t k = 0; k < g.positions[f].size(); ++k) {
      const int64_t pos = g.positions[f][k];
      const size_t u = UniqueIndex(fr[f], g.local[f][k]);
      uidx[pos] = u;
      int64_t len = 0;
      if (csr) {
        len = fr[f].end[u] - fr[f].start[u];
      } else {
        const int64_t w = impl.files[f]->matrix().n_cols;
        const float* row = dense[f].data() + u * w;
        len = std::count_if(row, row + w, [](float v) { return v != 0.0f; });
      }
      out.indptr[pos + 1] = len;
    }
  }
  std::partial_sum(out.indptr.begin(), out.indptr.end(), out.indptr.begin());
  const int64_t nnz = out.indptr.back();
  ResizeForOverwrite(out.indices, static_cast<size_t>(nnz));
  ResizeForOverwrite(out.data, static_cast<size_t>(nnz));

  std::vector<io::ArrayRead> reads;
  for (size_t f = 0; f < nfiles; ++f) {
    const auto& m = impl.files[f]->matrix();
    if (g.positions[f].empty()) continue;
    if (m.encoding == anndata::MatrixEncoding::kDense) {
      for (size_t k = 0; k < g.positions[f].size(); ++k) {
        const int64_t pos = g.positions[f][k];
        const float* row = dense[f].data() + uidx[pos] * m.n_cols;
        int64_t o = out.indptr[pos];
        for (int64_t c = 0; c < m.n_cols; ++c) {
          if (row[c] != 0.0f) {
            out.indices[o] = static_cast<int32_t>(c);
            out.data[o++] = row[c];
          }
        }
      }
      continue;
    }
    std::vector<io::Piece> pieces;
    for (size_t k = 0; k < g.positions[f].size(); ++k) {
      const int64_t pos = g.positions[f][k];
      const size_t u = uidx[pos];
      pieces.push_back({fr[f].start[u], fr[f].end[u] - fr[f].start[u], out.indptr[pos],
                        g.local[f][k]});  // the row, for error messages
    }
    reads.push_back({&m.data, &impl.files[f]->file(), pieces, DType::kFloat32, out.data.data()});
    // Indices outside [0, n_vars) would make scipy and torch index out of bounds: they
    // are checked while decoding, in their stored dtype.
    reads.push_back({&m.indices, &impl.files[f]->file(), std::move(pieces), DType::kInt32,
                     out.indices.data(), m.n_cols});
  }
  for (io::ArrayRead& r : reads) {
    r.decode_prefix = impl.decode_prefix;
    // data (float32 out); indices have their range check.
    if (r.out_type == DType::kFloat32) r.value_check = impl.value_check;
  }
  CF_RETURN_IF_ERROR(io::ReadArrays(reads, pool, nullptr, impl.pool.get()));
  MapGenes(impl, g, out);
  return Status::OK();
}

}  // namespace cellfeed
