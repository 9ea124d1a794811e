// One AnnData zarr store (v2 or v3; a directory or a zip) opened for reading, as anndata
// 0.7-0.13 writes it: X / raw/X / layers as csr_matrix or dense array, obs/var as
// dataframes (numeric, bool, string, categorical, nullable columns; the dataframe layout
// is h5ad's, read through zarr/element_tree.h). Metadata is parsed
// once at open (strings and categories decoded then); the matrix and numeric columns are
// read afterwards with pread and decoded on the engine's worker threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "source/anndata_source.h"
#include "zarr/hierarchy.h"

namespace cellfeed::zarr {

// Whether `path` is a zarr store (a directory or a zip file) rather than an HDF5 file.
bool LooksLikeZarr(const std::string& path);

// The AnnData stores `path` holds: itself, or for an annbatch collection (root attribute
// encoding-type "annbatch-preshuffled") its dataset_<i> groups in order.
Result<std::vector<std::string>> ExpandCollection(const std::string& path);

class ZarrAnnData final : public AnnDataSource {
 public:
  static Result<std::unique_ptr<ZarrAnnData>> Open(const std::string& path,
                                                   const std::string& layer);

  const std::string& path() const override { return path_; }
  const io::RandomAccessFile& file() const override { return h_->store().main_file(); }
  const anndata::MatrixLayout& matrix() const override { return matrix_; }
  const anndata::DataFrameLayout& obs() const override { return obs_; }
  const anndata::ObsmLayout& obsm() const override { return obsm_; }
  const anndata::DataFrameLayout& var() const override { return var_; }
  const std::vector<std::string>& var_names() const override { return *var_.index_values; }
  FileSummary Summarize() const override;
  Result<std::vector<std::string>> ReadIndex(const anndata::DataFrameLayout& df,
                                             std::span<const int64_t> rows) const override;
  Result<Column> ReadColumn(const anndata::ColumnLayout& column, std::span<const int64_t> rows,
                            util::ThreadPool& pool) const override;
  Status CheckUnchanged() const override { return file().CheckUnchanged(); }

 private:
  Status OpenAnnData(const std::string& layer);
  Result<anndata::MatrixLayout> ReadMatrix(const std::string& element);
  Result<anndata::DataFrameLayout> ReadDataFrame(const std::string& element);
  Result<io::DatasetLayout> Array(const std::string& node, ArrayMeta* meta = nullptr);
  std::string ListLayers() const;
  std::string path_;
  std::unique_ptr<Hierarchy> h_;
  anndata::MatrixLayout matrix_;
  anndata::DataFrameLayout obs_, var_;
  anndata::ObsmLayout obsm_;
};

}  // namespace cellfeed::zarr
