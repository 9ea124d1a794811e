#include "h5ad/anndata_file.h"

#include "h5ad/cellranger_layout.h"
#include "h5ad/column_reader.h"
#include "anndata/file_summary.h"
#include "anndata/obsm_layout.h"
#include "h5ad/h5_dataframe_layout.h"
#include "h5ad/h5_matrix_layout.h"
#include "h5ad/h5_element_tree.h"

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
  if (IsCellRanger(*f->h5_)) {
    CF_ASSIGN_OR_RETURN(auto l, ReadCellRangerLayout(*f->h5_, layer));
    f->matrix_ = std::move(l.matrix);
    f->obs_ = std::move(l.obs);
    f->var_ = std::move(l.var);
  } else {
    CF_RETURN_IF_ERROR(f->OpenAnnData(layer));
  }
  if (f->var_.index_values) {
    f->var_names_ = *f->var_.index_values;
  } else {
    CF_ASSIGN_OR_RETURN(f->var_names_, f->h5_->ReadStrings(f->var_.index_dataset));
  }
  return f;
}

namespace {

std::string ListLayers(const io::H5File& h5) {
  std::string have;
  if (h5.Kind("layers") == io::NodeKind::kGroup) {
    auto children = h5.Children("layers");
    if (children.ok()) {
      for (const auto& c : children.value()) have += (have.empty() ? "" : ", ") + c;
    }
  }
  return have.empty() ? "none" : have;
}

}  // namespace

Status AnnDataFile::OpenAnnData(const std::string& layer) {
  const io::H5File& h5 = *h5_;
  ElementNames names = ElementsForLayer(layer);
  // anndata < 0.7 keeps raw as raw.X / raw.var next to X.
  const bool legacy_raw = names.matrix == "raw/X" && h5.Kind("raw") == io::NodeKind::kMissing &&
                          h5.Kind("raw.X") != io::NodeKind::kMissing;
  if (legacy_raw) names = {"raw.X", "raw.var"};
  if (!layer.empty() && layer != "X" && layer != "raw" &&
      h5.Kind(names.matrix) == io::NodeKind::kMissing) {
    return Status::Invalid(path_ + ": layer '" + layer + "' not found (layers: " +
                           ListLayers(h5) + ")");
  }
  if (names.matrix == "X" && h5.Kind("X") == io::NodeKind::kMissing) {
    // anndata allows X = None: say what can be read instead.
    const bool raw = h5.Kind("raw/X") != io::NodeKind::kMissing ||
                     h5.Kind("raw.X") != io::NodeKind::kMissing;
    const std::string layers = ListLayers(h5);
    if (layers == "none" && !raw) {
      return Status::Invalid(path_ + ": X: missing, and there are no layers or raw/X to read "
                             "instead (not an AnnData file?)");
    }
    return Status::Invalid(path_ + ": X: missing (X is absent: written with X=None); open a "
                           "layer instead: layer=NAME for one of the layers (" + layers + ")" +
                           (raw ? " or layer='raw' for raw/X" : ""));
  }
  if (names.matrix == "raw/X" && h5.Kind("raw/X") == io::NodeKind::kMissing) {
    return Status::Invalid(path_ + ": raw/X: missing: layer 'raw' cannot be read (layers: " +
                           ListLayers(h5) + ")");
  }
  CF_ASSIGN_OR_RETURN(matrix_, ReadMatrixLayout(h5, names.matrix));
  // anndata < 0.7 (compound obs/var): categories of obs/var columns live in uns.
  CF_ASSIGN_OR_RETURN(obs_, ReadDataFrameLayout(h5, "obs", "uns"));
  CF_ASSIGN_OR_RETURN(var_, ReadDataFrameLayout(h5, names.var, names.var == "var" ? "uns" : ""));
  if (obs_.n_rows != matrix_.n_rows) {
    return Status::Invalid(path_ + ": obs has " + std::to_string(obs_.n_rows) + " rows but " +
                           names.matrix + " has " + std::to_string(matrix_.n_rows));
  }
  if (var_.n_rows != matrix_.n_cols) {
    return Status::Invalid(path_ + ": " + names.var + " has " + std::to_string(var_.n_rows) +
                           " rows but " + names.matrix + " has " +
                           std::to_string(matrix_.n_cols) + " columns");
  }
  obsm_ = anndata::ReadObsmLayout(H5ElementTree(h5), matrix_.n_rows);
  return Status::OK();
}

FileSummary AnnDataFile::Summarize() const {
  return anndata::SummarizeAnnData(path_, matrix_, n_obs(), n_vars(), obs_, var_);
}

Result<std::vector<std::string>> AnnDataFile::ReadIndex(const anndata::DataFrameLayout& df,
                                                        std::span<const int64_t> rows) const {
  return ReadIndexAt(*this, df, rows);
}

Result<Column> AnnDataFile::ReadColumn(const anndata::ColumnLayout& column, std::span<const int64_t> rows,
                                       util::ThreadPool& pool) const {
  return h5ad::ReadColumn(*this, column, rows, pool);
}

Status AnnDataFile::CheckUnchanged() const {
  CF_RETURN_IF_ERROR(file_->CheckUnchanged());
  return h5_->CheckUnchanged();
}

}  // namespace cellfeed::h5ad
