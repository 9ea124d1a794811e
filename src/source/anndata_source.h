// One AnnData store opened for reading, whatever its format (an h5ad / HDF5 file, a zarr
// store): what the collection needs from each of its files. Everything here is decided at
// open (layouts, var names, categories); afterwards the matrix is read through
// io::ReadArrays on the layouts' chunk tables (pread + our decoders on worker threads),
// and obs/var columns and names through ReadColumn / ReadIndex.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "cellfeed/collection.h"
#include "cellfeed/dataframe.h"
#include "anndata/dataframe_layout.h"
#include "anndata/matrix_layout.h"
#include "anndata/obsm_layout.h"
#include "io/file.h"
#include "io/hdf5/isolation.h"
#include "util/thread_pool.h"

namespace cellfeed {

class AnnDataSource {
 public:
  virtual ~AnnDataSource() = default;

  virtual const std::string& path() const = 0;
  // The matrix chosen by OpenOptions::layer, and the file its chunk addresses refer to.
  virtual const anndata::MatrixLayout& matrix() const = 0;
  virtual const io::RandomAccessFile& file() const = 0;
  virtual const anndata::DataFrameLayout& obs() const = 0;
  virtual const anndata::DataFrameLayout& var() const = 0;
  virtual const std::vector<std::string>& var_names() const = 0;
  // obsm's matrices, described at open (empty for formats without obsm).
  virtual const anndata::ObsmLayout& obsm() const = 0;
  virtual FileSummary Summarize() const = 0;

  // Index strings of `df` (obs or var) at `rows` (any order, repeats allowed).
  virtual Result<std::vector<std::string>> ReadIndex(const anndata::DataFrameLayout& df,
                                                     std::span<const int64_t> rows) const = 0;
  // One column of obs or var at `rows`.
  virtual Result<Column> ReadColumn(const anndata::ColumnLayout& column,
                                    std::span<const int64_t> rows,
                                    util::ThreadPool& pool) const = 0;
  // IOError naming the store if it changed since it was opened.
  virtual Status CheckUnchanged() const = 0;
  // Reads after open that still go through libhdf5 (strings) are first probed in a child
  // process (io/hdf5/isolation.h). Stores read without libhdf5 have nothing to do.
  virtual void IsolateLibhdf5Reads(const io::IsolationLimits& limits) {}

  int64_t n_obs() const { return matrix().n_rows; }
  int64_t n_vars() const { return matrix().n_cols; }
};

// Opens `path`, telling the format from the content (not the name).
Result<std::unique_ptr<AnnDataSource>> OpenAnnDataSource(const std::string& path,
                                                         const std::string& layer);
// The stores `paths` name, in order: an annbatch collection's root stands for its
// dataset_<i> stores; every other path for itself.
Result<std::vector<std::string>> ExpandSourcePaths(const std::vector<std::string>& paths);

}  // namespace cellfeed
