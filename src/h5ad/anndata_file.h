// One AnnData HDF5 file opened for reading: its matrix layout, obs/var dataframes and var
// names. The layout is told from the content: anndata >= 0.7 (and its older layouts: 0.7
// categoricals, < 0.7 compound obs/var with raw.X / raw.var), or a Cell Ranger matrix.
// Opening uses libhdf5 (metadata only); afterwards bulk data is read with pread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cellfeed/collection.h"
#include "anndata/dataframe_layout.h"
#include "anndata/matrix_layout.h"
#include "io/file.h"
#include "io/hdf5/h5_file.h"
#include "source/anndata_source.h"

namespace cellfeed::h5ad {

// Maps OpenOptions::layer to the matrix and var elements: "" -> X/var, "raw" -> raw/X +
// raw/var, name -> layers/<name>/var.
struct ElementNames {
  std::string matrix, var;
};
ElementNames ElementsForLayer(const std::string& layer);

class AnnDataFile final : public AnnDataSource {
 public:
  static Result<std::unique_ptr<AnnDataFile>> Open(const std::string& path,
                                                   const std::string& layer);

  const std::string& path() const override { return path_; }
  const io::H5File& h5() const { return *h5_; }
  const io::RandomAccessFile& file() const override { return *file_; }
  const anndata::MatrixLayout& matrix() const override { return matrix_; }
  const anndata::DataFrameLayout& obs() const override { return obs_; }
  const anndata::ObsmLayout& obsm() const override { return obsm_; }
  const anndata::DataFrameLayout& var() const override { return var_; }
  const std::vector<std::string>& var_names() const override { return var_names_; }
  FileSummary Summarize() const override;
  Result<std::vector<std::string>> ReadIndex(const anndata::DataFrameLayout& df,
                                             std::span<const int64_t> rows) const override;
  Result<Column> ReadColumn(const anndata::ColumnLayout& column, std::span<const int64_t> rows,
                            util::ThreadPool& pool) const override;
  Status CheckUnchanged() const override;
  void IsolateLibhdf5Reads(const io::IsolationLimits& limits) override {
    h5_->IsolateStringReads(limits);
  }

 private:
  Status OpenAnnData(const std::string& layer);
  std::string path_;
  std::shared_ptr<io::H5File> h5_;
  std::shared_ptr<io::RandomAccessFile> file_;
  anndata::MatrixLayout matrix_;
  anndata::DataFrameLayout obs_, var_;
  anndata::ObsmLayout obsm_;
  std::vector<std::string> var_names_;
};

}  // namespace cellfeed::h5ad
