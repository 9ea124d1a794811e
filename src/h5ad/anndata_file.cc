#include "h5ad/anndata_file.h"

namespace cellfeed::h5ad {

ElementNames ElementsForLayer(const std::string& layer) {
  if (layer.empty() || layer == "X") return {"X", "var"};
  if (layer == "raw") return {"raw/X", "raw/var"};
  return {"layers/" + layer, "var"};
}

Result<std::unique_ptr<AnnDataFile>> AnnDataFile::Open(const std::string& path,
                                                       const std::string& layer) {
  auto f = std::unique_ptr<AnnDataFile>(new AnnDataFile());
  f->path_ = path;
  CF_ASSIGN_OR_RETURN(f->h5_, io::H5File::Open(path));
  CF_ASSIGN_OR_RETURN(f->file_, io::RandomAccessFile::Open(path));
  // Both descriptors must be the same file (not one replaced in between), unchanged.
  if (f->h5_->inode() != 0 &&
      (f->h5_->inode() != f->file_->inode() || f->h5_->device() != f->file_->device() ||
       f->h5_->size_at_open() != f->file_->size_at_open())) {
    return Status::IOError(path + ": file changed or was replaced while being opened; reopen it");
  }
  const ElementNames names = ElementsForLayer(layer);
  if (!layer.empty() && layer != "X" && layer != "raw" &&
      f->h5_->Kind(names.matrix) == io::NodeKind::kMissing) {
    std::string have;
    if (f->h5_->Kind("layers") == io::NodeKind::kGroup) {
      auto children = f->h5_->Children("layers");
      if (children.ok()) {
        for (const auto& c : children.value()) have += (have.empty() ? "" : ", ") + c;
      }
    }
    return Status::Invalid(path + ": layer '" + layer + "' not found (layers: " +
                           (have.empty() ? "none" : have) + ")");
  }
  CF_ASSIGN_OR_RETURN(f->matrix_, ReadMatrixLayout(*f->h5_, names.matrix));
  CF_ASSIGN_OR_RETURN(f->obs_, ReadDataFrameLayout(*f->h5_, "obs"));
  CF_ASSIGN_OR_RETURN(f->var_, ReadDataFrameLayout(*f->h5_, names.var));
  if (f->obs_.n_rows != f->matrix_.n_rows) {
    return Status::Invalid(path + ": obs has " + std::to_string(f->obs_.n_rows) + " rows but " +
                           names.matrix + " has " + std::to_string(f->matrix_.n_rows));
  }
  if (f->var_.n_rows != f->matrix_.n_cols) {
    return Status::Invalid(path + ": " + names.var + " has " + std::to_string(f->var_.n_rows) +
                           " rows but " + names.matrix + " has " +
                           std::to_string(f->matrix_.n_cols) + " columns");
  }
  CF_ASSIGN_OR_RETURN(f->var_names_, f->h5_->ReadStrings(f->var_.index_dataset));
  return f;
}

namespace {

ArraySummary Summarize(const io::DatasetLayout& d, const std::string& name, double rows_per_elem) {
  ArraySummary a;
  a.name = name;
  a.dtype = DTypeName(d.dtype);
  a.shape = d.shape;
  a.storage = !d.compact_bytes.empty() ? "compact" : d.chunked ? "chunked" : "contiguous";
  a.chunk_shape = d.chunked ? d.chunk_shape : std::vector<int64_t>{};
  a.filters = d.filters.Describe();
  a.num_chunks = d.chunked ? static_cast<int64_t>(d.chunks.size()) : 0;
  a.rows_per_chunk = d.chunked ? static_cast<double>(d.chunk_shape[0]) * rows_per_elem : 0;
  return a;
}

}  // namespace

FileSummary AnnDataFile::Summarize() const {
  FileSummary s;
  s.path = path_;
  s.n_obs = n_obs();
  s.n_vars = n_vars();
  s.nnz = matrix_.nnz();
  s.matrix_element = matrix_.element;
  if (matrix_.encoding == MatrixEncoding::kCsr) {
    s.encoding = "csr_matrix";
    // Cells per chunk of data/indices: chunk length over the mean values per cell.
    const double per_cell = n_obs() > 0 ? static_cast<double>(s.nnz) / n_obs() : 0;
    const double cells_per_value = per_cell > 0 ? 1.0 / per_cell : 0;
    s.arrays.push_back(h5ad::Summarize(matrix_.data, matrix_.element + "/data", cells_per_value));
    s.arrays.push_back(
        h5ad::Summarize(matrix_.indices, matrix_.element + "/indices", cells_per_value));
    s.arrays.push_back(h5ad::Summarize(matrix_.indptr, matrix_.element + "/indptr", 1.0));
  } else {
    s.encoding = "array";
    s.arrays.push_back(h5ad::Summarize(matrix_.data, matrix_.element, 1.0));
  }
  for (const auto& c : obs_.columns) s.obs_columns.push_back(c.info);
  for (const auto& c : var_.columns) s.var_columns.push_back(c.info);
  return s;
}

}  // namespace cellfeed::h5ad
