#include "anndata/matrix_layout.h"

#include <algorithm>

namespace cellfeed::anndata {

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

}  // namespace

Status CheckCsrParts(MatrixLayout& m) {
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
    return Status::Invalid(m.data.file_path + ": " + m.element + ": data has " + std::to_string(m.data.length()) +
                           " values but indices has " + std::to_string(m.indices.length()) +
                           " (expected one column index per value)");
  }
  // indptr (checked at open to end at nnz) claims every element of data and indices, and
  // every row needs its indptr entries: a chunk never written would read as the fill
  // value (column 0, value 0, offset 0): a silently wrong matrix. Refused.
  for (const io::DatasetLayout* d : {&m.data, &m.indices, &m.indptr}) {
    CF_RETURN_IF_ERROR(CheckAllChunksWritten(*d));
  }
  return Status::OK();
}

}  // namespace cellfeed::anndata
