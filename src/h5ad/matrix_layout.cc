#include "h5ad/matrix_layout.h"

#include <algorithm>

namespace cellfeed::h5ad {

namespace {

Status CheckNumeric(const io::DatasetLayout& d, bool integer) {
  if (integer && !DTypeIsInteger(d.dtype)) {
    return Status::Invalid(d.Where() + ": dtype " + DTypeName(d.dtype) +
                           " is not an integer type");
  }
  if (d.shape.size() != 1) return Status::Invalid(d.Where() + ": expected a 1-D array");
  return Status::OK();
}

Status CheckAllChunksWritten(const io::DatasetLayout& d) {
  if (!d.chunked) {
    if (d.compact_bytes.empty() && d.length() > 0 && !d.chunks.empty() &&
        d.chunks[0].address == io::kNoAddress) {
      return Status::Invalid(d.Where() + ": storage never written (would read as the fill "
                             "value), but indptr claims its values");
    }
    return Status::OK();
  }
  for (size_t k = 0; k < d.chunks.size(); ++k) {
    if (d.chunks[k].address != io::kNoAddress) continue;
    const int64_t begin = static_cast<int64_t>(k) * d.chunk_shape[0];
    const int64_t end = std::min(begin + d.chunk_shape[0], d.length());
    return Status::Invalid(d.Where() + ": chunk " + std::to_string(k) + " (elements [" +
                           std::to_string(begin) + ", " + std::to_string(end) +
                           ")) was never written (no address; it would read as the fill "
                           "value), but indptr claims its values");
  }
  return Status::OK();
}

Result<MatrixLayout> ReadCsr(const io::H5File& f, const std::string& e) {
  MatrixLayout m;
  m.element = e;
  m.encoding = MatrixEncoding::kCsr;
  CF_ASSIGN_OR_RETURN(auto shape, f.IntListAttribute(e, "shape"));
  if (shape.size() != 2 || shape[0] < 0 || shape[1] < 0) {
    return Status::Invalid(f.path() + ": " + e + ": attribute 'shape' must hold 2 sizes");
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
  CF_RETURN_IF_ERROR(CheckNumeric(m.data, false));
  CF_RETURN_IF_ERROR(CheckNumeric(m.indices, true));
  CF_RETURN_IF_ERROR(CheckNumeric(m.indptr, true));
  if (m.indptr.length() != m.n_rows + 1) {
    return Status::Invalid(m.indptr.Where() + ": has " + std::to_string(m.indptr.length()) +
                           " entries, expected n_obs + 1 = " + std::to_string(m.n_rows + 1) +
                           " (shape attribute " + std::to_string(m.n_rows) + " x " +
                           std::to_string(m.n_cols) + ")");
  }
  if (m.data.length() != m.indices.length()) {
    return Status::Invalid(f.path() + ": " + e + ": data has " + std::to_string(m.data.length()) +
                           " values but indices has " + std::to_string(m.indices.length()) +
                           " (expected one column index per value)");
  }
  // indptr (checked at open to end at nnz) claims every element of data and indices, and
  // every row needs its indptr entries: a chunk never written would read as the fill
  // value (column 0, value 0, offset 0): a silently wrong matrix. Refused.
  for (const io::DatasetLayout* d : {&m.data, &m.indices, &m.indptr}) {
    CF_RETURN_IF_ERROR(CheckAllChunksWritten(*d));
  }
  return m;
}

}  // namespace

Result<MatrixLayout> ReadMatrixLayout(const io::H5File& f, const std::string& e) {
  const std::string where = f.path() + ": " + e;
  io::NodeKind kind = f.Kind(e);
  if (kind == io::NodeKind::kMissing) return Status::Invalid(where + ": missing matrix element");
  if (f.HasAttribute(e, "h5sparse_format")) {
    return Status::Unsupported(where + ": anndata < 0.7 sparse layout (h5sparse_format) is "
                               "not supported yet");
  }
  std::string encoding;
  if (f.HasAttribute(e, "encoding-type")) {
    CF_ASSIGN_OR_RETURN(encoding, f.StringAttribute(e, "encoding-type"));
  }
  if (kind == io::NodeKind::kGroup) {
    if (encoding == "csr_matrix") return ReadCsr(f, e);
    if (encoding == "csc_matrix") {
      return Status::Unsupported(where + ": csc_matrix is not supported yet (cell-wise reads "
                                 "need csr_matrix; convert with adata.X = adata.X.tocsr())");
    }
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
