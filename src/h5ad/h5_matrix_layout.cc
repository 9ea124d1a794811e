#include "h5ad/h5_matrix_layout.h"

namespace cellfeed::h5ad {

using anndata::CheckCsrParts;
using anndata::MatrixEncoding;
using anndata::MatrixLayout;

namespace {

Result<MatrixLayout> ReadCsr(const io::H5File& f, const std::string& e,
                             const std::string& shape_attr) {
  MatrixLayout m;
  m.element = e;
  m.encoding = MatrixEncoding::kCsr;
  CF_ASSIGN_OR_RETURN(auto shape, f.IntListAttribute(e, shape_attr));
  if (shape.size() != 2 || shape[0] < 0 || shape[1] < 0) {
    return Status::Invalid(f.path() + ": " + e + ": attribute '" + shape_attr +
                           "' must hold 2 sizes");
  }
  m.n_rows = shape[0];
  m.n_cols = shape[1];
  if (m.n_cols > INT32_MAX) {
    return Status::Unsupported(f.path() + ": " + e + ": more than 2^31-1 columns");
  }
  for (const char* part : {"data", "indices", "indptr"}) {
    if (f.Kind(e + "/" + part) != io::NodeKind::kDataset) {
      return Status::Invalid(f.path() + ": " + e + "/" + part + ": missing (csr_matrix needs "
                             "data, indices and indptr)");
    }
  }
  CF_ASSIGN_OR_RETURN(m.data, f.Describe(e + "/data"));
  CF_ASSIGN_OR_RETURN(m.indices, f.Describe(e + "/indices"));
  CF_ASSIGN_OR_RETURN(m.indptr, f.Describe(e + "/indptr"));
  return m;
}

Result<MatrixLayout> ReadCheckedCsr(const io::H5File& f, const std::string& e,
                                    const std::string& shape_attr) {
  CF_ASSIGN_OR_RETURN(auto m, ReadCsr(f, e, shape_attr));
  CF_RETURN_IF_ERROR(CheckCsrParts(m));
  return m;
}

std::string CscAdvice(const std::string& where) {
  return where + ": csc_matrix is not supported (reading a cell from CSC scans every gene's "
         "column); convert once to csr_matrix: adata = anndata.read_h5ad(path); "
         "adata.X = adata.X.tocsr(); adata.write_h5ad(path) (see docs/ERRORS.md)";
}

}  // namespace

Result<MatrixLayout> ReadMatrixLayout(const io::H5File& f, const std::string& e) {
  const std::string where = f.path() + ": " + e;
  io::NodeKind kind = f.Kind(e);
  if (kind == io::NodeKind::kMissing) return Status::Invalid(where + ": missing matrix element");
  if (f.HasAttribute(e, "h5sparse_format")) {
    // anndata < 0.7: a group with data/indices/indptr; the format and shape as attributes.
    CF_ASSIGN_OR_RETURN(auto format, f.StringAttribute(e, "h5sparse_format"));
    if (format == "csr") return ReadCheckedCsr(f, e, "h5sparse_shape");
    if (format == "csc") return Status::Unsupported(CscAdvice(where));
    return Status::Unsupported(where + ": h5sparse_format '" + format +
                               "' is not supported (csr expected)");
  }
  std::string encoding;
  if (f.HasAttribute(e, "encoding-type")) {
    CF_ASSIGN_OR_RETURN(encoding, f.StringAttribute(e, "encoding-type"));
  }
  if (kind == io::NodeKind::kGroup) {
    if (encoding == "csr_matrix") return ReadCheckedCsr(f, e, "shape");
    if (encoding == "csc_matrix") return Status::Unsupported(CscAdvice(where));
    return Status::Unsupported(where + ": matrix encoding '" +
                               (encoding.empty() ? std::string("(none)") : encoding) +
                               "' is not supported (csr_matrix or array expected)");
  }
  if (kind != io::NodeKind::kDataset) return Status::Invalid(where + ": not a dataset or group");
  if (!encoding.empty() && encoding != "array") {
    return Status::Unsupported(where + ": matrix encoding '" + encoding + "' is not supported");
  }
  MatrixLayout m;
  m.element = e;
  m.encoding = MatrixEncoding::kDense;
  CF_ASSIGN_OR_RETURN(m.data, f.Describe(e));
  if (m.data.shape.size() != 2) return Status::Invalid(where + ": dense matrix must be 2-D");
  m.n_rows = m.data.shape[0];
  m.n_cols = m.data.shape[1];
  return m;
}

}  // namespace cellfeed::h5ad
