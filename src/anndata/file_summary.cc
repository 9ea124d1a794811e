#include "anndata/file_summary.h"

namespace cellfeed::anndata {

namespace {

ArraySummary SummarizeArray(const io::DatasetLayout& d, const std::string& name, double rows_per_elem,
                            const std::string& storage) {
  ArraySummary a;
  a.name = name;
  a.dtype = DTypeName(d.dtype);
  a.shape = d.shape;
  a.storage = !storage.empty()           ? storage
              : !d.compact_bytes.empty() ? "compact"
              : d.chunked                ? "chunked"
                                         : "contiguous";
  a.chunk_shape = d.chunked ? d.chunk_shape : std::vector<int64_t>{};
  a.filters = d.filters.Describe();
  a.num_chunks = d.chunked ? static_cast<int64_t>(d.chunks.size()) : 0;
  a.rows_per_chunk = d.chunked ? static_cast<double>(d.chunk_shape[0]) * rows_per_elem : 0;
  return a;
}

}  // namespace

FileSummary SummarizeAnnData(const std::string& path, const MatrixLayout& m, int64_t n_obs,
                             int64_t n_vars, const DataFrameLayout& obs, const DataFrameLayout& var,
                             const std::string& storage) {
  FileSummary s;
  s.path = path;
  s.n_obs = n_obs;
  s.n_vars = n_vars;
  s.nnz = m.nnz();
  s.matrix_element = m.element;
  if (m.encoding == MatrixEncoding::kCsr) {
    s.encoding = "csr_matrix";
    // Cells per chunk of data/indices: chunk length over the mean values per cell.
    const double per_cell = n_obs > 0 ? static_cast<double>(s.nnz) / n_obs : 0;
    const double cells_per_value = per_cell > 0 ? 1.0 / per_cell : 0;
    s.arrays.push_back(SummarizeArray(m.data, m.element + "/data", cells_per_value, storage));
    s.arrays.push_back(SummarizeArray(m.indices, m.element + "/indices", cells_per_value, storage));
    s.arrays.push_back(SummarizeArray(m.indptr, m.element + "/indptr", 1.0, storage));
  } else {
    s.encoding = "array";
    s.arrays.push_back(SummarizeArray(m.data, m.element, 1.0, storage));
  }
  for (const auto& c : obs.columns) s.obs_columns.push_back(c.info);
  for (const auto& c : var.columns) s.var_columns.push_back(c.info);
  return s;
}

}  // namespace cellfeed::anndata
