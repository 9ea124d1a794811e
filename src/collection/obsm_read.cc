// Rows of an obsm entry across a collection's files, as float32.
//
// Each file's entry was described at open like X (h5ad/obsm_layout.h), so its rows are
// read by the same machinery: dense rows as pieces of the 2-D array, CSR rows through
// indptr extents then data/indices pieces, every chunk fetched and decoded once on the
// worker threads. The result is CSR when every file stores the entry as csr_matrix (rows
// placed straight into the output arrays), otherwise dense (CSR files' rows scattered into
// their dense rows).
#include <algorithm>
#include <numeric>

#include "collection/collection_impl.h"

namespace cellfeed {

namespace {

using anndata::MatrixEncoding;
using anndata::MatrixLayout;

// Each file's layout of obsm[key]: an error naming the file and element when one lacks
// it, cannot read it, or has another width than the first file.
Result<std::vector<const MatrixLayout*>> ObsmMatrices(const Collection::Impl& impl,
                                                      const std::string& key) {
  std::vector<const MatrixLayout*> out;
  for (size_t f = 0; f < impl.files.size(); ++f) {
    const anndata::ObsmLayout& obsm = impl.files[f]->obsm();
    if (!obsm.error.ok()) return obsm.error;
    const anndata::ObsmEntry* e = obsm.Find(key);
    if (!e) {
      std::string have;
      for (const auto& x : obsm.entries) have += (have.empty() ? "" : ", ") + x.key;
      return Status::Invalid(impl.paths[f] + ": obsm/" + key + ": missing (this file's obsm: " +
                             (have.empty() ? "none" : have) + ")");
    }
    if (!e->matrix) return e->error;
    if (!out.empty() && e->matrix->n_cols != out[0]->n_cols) {
      return Status::Invalid(impl.paths[f] + ": obsm/" + key + ": has " +
                             std::to_string(e->matrix->n_cols) + " columns, " + impl.paths[0] +
                             " has " + std::to_string(out[0]->n_cols) +
                             " (an obsm entry must have one width in every file)");
    }
    out.push_back(&*e->matrix);
  }
  return out;
}

io::ValueCheck ObsmValueCheck(const Collection::Impl& impl) {
  // Counts checks are for X; an embedding only has to be finite.
  return impl.value_check == io::ValueCheck::kNone ? io::ValueCheck::kNone
                                                   : io::ValueCheck::kFinite;
}

Status ReadDense(const Collection::Impl& impl, std::span<const MatrixLayout* const> mats,
                 const RowsByFile& g, std::vector<FileRows>& fr, DenseMatrix& out,
                 util::ThreadPool& pool) {
  const size_t nfiles = impl.files.size();
  const int64_t w = out.n_cols;
  std::vector<io::ArrayRead> reads;
  // CSR files' distinct rows land here first, then are scattered into dense rows.
  std::vector<std::vector<float>> data(nfiles);
  std::vector<std::vector<int32_t>> indices(nfiles);
  std::vector<std::vector<int64_t>> offset(nfiles);
  for (size_t f = 0; f < nfiles; ++f) {
    if (g.positions[f].empty()) continue;
    const MatrixLayout& m = *mats[f];
    const io::RandomAccessFile* file = &impl.files[f]->file();
    if (m.encoding == MatrixEncoding::kDense) {
      std::vector<io::Piece> pieces;
      for (size_t k = 0; k < g.positions[f].size(); ++k) {
        const int64_t r = g.local[f][k], pos = g.positions[f][k];
        io::Piece& last = pieces.empty() ? pieces.emplace_back(io::Piece{r, 0, pos, r})
                                         : pieces.back();
        if (last.src + last.count == r && last.dst + last.count == pos) {
          ++last.count;
        } else {
          pieces.push_back({r, 1, pos, r});
        }
      }
      reads.push_back({&m.data, file, std::move(pieces), DType::kFloat32, out.values.data()});
      continue;
    }
    int64_t used = 0;
    std::vector<io::Piece> pieces;
    for (size_t u = 0; u < fr[f].unique.size(); ++u) {
      offset[f].push_back(used);
      const int64_t len = fr[f].end[u] - fr[f].start[u];
      if (len > 0) pieces.push_back({fr[f].start[u], len, used, fr[f].unique[u]});
      used += len;
    }
    offset[f].push_back(used);
    data[f].resize(static_cast<size_t>(used));
    indices[f].resize(static_cast<size_t>(used));
    reads.push_back({&m.data, file, pieces, DType::kFloat32, data[f].data()});
    reads.push_back({&m.indices, file, std::move(pieces), DType::kInt32, indices[f].data(),
                     m.n_cols});
  }
  for (io::ArrayRead& r : reads) {
    r.decode_prefix = impl.decode_prefix;
    if (r.out_type == DType::kFloat32) r.value_check = ObsmValueCheck(impl);
  }
  CF_RETURN_IF_ERROR(io::ReadArrays(reads, pool, nullptr, impl.pool.get()));
  for (size_t f = 0; f < nfiles; ++f) {
    if (g.positions[f].empty() || mats[f]->encoding != MatrixEncoding::kCsr) continue;
    for (size_t k = 0; k < g.positions[f].size(); ++k) {
      float* row = out.values.data() + g.positions[f][k] * w;
      std::fill(row, row + w, 0.0f);
      const size_t u = UniqueIndex(fr[f], g.local[f][k]);
      for (int64_t o = offset[f][u]; o < offset[f][u + 1]; ++o) {
        row[indices[f][static_cast<size_t>(o)]] += data[f][static_cast<size_t>(o)];
      }
    }
  }
  return Status::OK();
}

Status ReadCsr(const Collection::Impl& impl, std::span<const MatrixLayout* const> mats,
               const RowsByFile& g, std::vector<FileRows>& fr, CsrMatrix& out,
               util::ThreadPool& pool) {
  const size_t nfiles = impl.files.size();
  out.indptr.assign(static_cast<size_t>(out.n_rows) + 1, 0);
  std::vector<size_t> uidx(static_cast<size_t>(out.n_rows));
  for (size_t f = 0; f < nfiles; ++f) {
    for (size_t k = 0; k < g.positions[f].size(); ++k) {
      const int64_t pos = g.positions[f][k];
      const size_t u = UniqueIndex(fr[f], g.local[f][k]);
      uidx[pos] = u;
      out.indptr[pos + 1] = fr[f].end[u] - fr[f].start[u];
    }
  }
  std::partial_sum(out.indptr.begin(), out.indptr.end(), out.indptr.begin());
  const int64_t nnz = out.indptr.back();
  ResizeForOverwrite(out.indices, static_cast<size_t>(nnz));
  ResizeForOverwrite(out.data, static_cast<size_t>(nnz));
  std::vector<io::ArrayRead> reads;
  for (size_t f = 0; f < nfiles; ++f) {
    if (g.positions[f].empty()) continue;
    const MatrixLayout& m = *mats[f];
    std::vector<io::Piece> pieces;
    for (size_t k = 0; k < g.positions[f].size(); ++k) {
      const int64_t pos = g.positions[f][k];
      const size_t u = uidx[pos];
      const int64_t len = fr[f].end[u] - fr[f].start[u];
      if (len > 0) pieces.push_back({fr[f].start[u], len, out.indptr[pos], g.local[f][k]});
    }
    const io::RandomAccessFile* file = &impl.files[f]->file();
    reads.push_back({&m.data, file, pieces, DType::kFloat32, out.data.data()});
    reads.push_back({&m.indices, file, std::move(pieces), DType::kInt32, out.indices.data(),
                     m.n_cols});
  }
  for (io::ArrayRead& r : reads) {
    r.decode_prefix = impl.decode_prefix;
    if (r.out_type == DType::kFloat32) r.value_check = ObsmValueCheck(impl);
  }
  return io::ReadArrays(reads, pool, nullptr, impl.pool.get());
}

}  // namespace

std::vector<ObsmInfo> Collection::ObsmKeys() const {
  std::vector<ObsmInfo> out;
  if (impl_->files.empty()) return out;
  for (const anndata::ObsmEntry& e : impl_->files[0]->obsm().entries) {
    if (!e.matrix) continue;
    auto mats = ObsmMatrices(*impl_, e.key);
    if (!mats.ok()) continue;
    size_t csr = 0;
    for (const MatrixLayout* m : mats.value()) csr += m->encoding == MatrixEncoding::kCsr;
    ObsmInfo info;
    info.key = e.key;
    info.n_cols = e.matrix->n_cols;
    info.dtype = DTypeName(e.matrix->data.dtype);
    info.encoding = csr == 0 ? "array" : csr == mats.value().size() ? "csr_matrix" : "mixed";
    out.push_back(std::move(info));
  }
  return out;
}

Result<ObsmMatrix> Collection::ReadObsm(const std::string& key,
                                        std::span<const int64_t> rows) const {
  const Impl& impl = *impl_;
  CF_RETURN_IF_ERROR(impl.CheckRows(rows));
  CF_ASSIGN_OR_RETURN(auto mats, ObsmMatrices(impl, key));
  const int64_t n_cols = mats.empty() ? 0 : mats[0]->n_cols;
  RowsByFile g = GroupRowsByFile(impl, rows);
  for (size_t f = 0; f < impl.files.size(); ++f) {
    if (!g.positions[f].empty()) CF_RETURN_IF_ERROR(impl.files[f]->file().CheckUnchanged());
  }
  std::vector<FileRows> fr(impl.files.size());
  CF_RETURN_IF_ERROR(ReadRowExtents(impl, mats, g, fr, nullptr, *impl.pool));
  const bool all_csr = std::all_of(mats.begin(), mats.end(), [](const MatrixLayout* m) {
    return m->encoding == MatrixEncoding::kCsr;
  });
  if (all_csr) {
    CsrMatrix out;
    out.n_rows = static_cast<int64_t>(rows.size());
    out.n_cols = n_cols;
    CF_RETURN_IF_ERROR(ReadCsr(impl, mats, g, fr, out, *impl.pool));
    return ObsmMatrix(std::move(out));
  }
  DenseMatrix out;
  out.n_rows = static_cast<int64_t>(rows.size());
  out.n_cols = n_cols;
  ResizeForOverwrite(out.values, rows.size() * static_cast<size_t>(n_cols));
  CF_RETURN_IF_ERROR(ReadDense(impl, mats, g, fr, out, *impl.pool));
  return ObsmMatrix(std::move(out));
}

}  // namespace cellfeed
