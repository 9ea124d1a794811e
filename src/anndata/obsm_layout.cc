#include "anndata/obsm_layout.h"

namespace cellfeed::anndata {

namespace {

using Kind = ElementTree::Kind;

Result<MatrixLayout> ReadObsmMatrix(const ElementTree& t, const std::string& node,
                                    int64_t n_obs) {
  const std::string where = t.Where(node);
  CF_ASSIGN_OR_RETURN(Kind kind, t.KindOf(node));
  CF_ASSIGN_OR_RETURN(auto enc_attr, t.StringAttr(node, "encoding-type"));
  const std::string enc = enc_attr.value_or("");
  MatrixLayout m;
  m.element = node;
  if (kind == Kind::kArray) {
    if (!enc.empty() && enc != "array") {
      return Status::Unsupported(where + ": encoding '" + enc + "' is not a matrix");
    }
    CF_ASSIGN_OR_RETURN(bool strings, t.IsStrings(node));
    if (strings) return Status::Invalid(where + ": holds strings, expected a numeric matrix");
    CF_ASSIGN_OR_RETURN(m.data, t.Describe(node));
    if (m.data.shape.size() != 2) {
      return Status::Invalid(where + ": a " + std::to_string(m.data.shape.size()) +
                             "-D array, expected a 2-D matrix (cells x columns)");
    }
    m.encoding = MatrixEncoding::kDense;
    m.n_rows = m.data.shape[0];
    m.n_cols = m.data.shape[1];
  } else if (kind == Kind::kGroup && enc == "csr_matrix") {
    m.encoding = MatrixEncoding::kCsr;
    CF_ASSIGN_OR_RETURN(auto shape, t.IntListAttr(node, "shape"));
    if (!shape || shape->size() != 2) {
      return Status::Invalid(where + ": attribute 'shape' must hold 2 sizes");
    }
    m.n_rows = (*shape)[0];
    m.n_cols = (*shape)[1];
    if (m.n_cols > INT32_MAX) return Status::Unsupported(where + ": more than 2^31-1 columns");
    CF_ASSIGN_OR_RETURN(m.data, t.Describe(node + "/data"));
    CF_ASSIGN_OR_RETURN(m.indices, t.Describe(node + "/indices"));
    CF_ASSIGN_OR_RETURN(m.indptr, t.Describe(node + "/indptr"));
    CF_RETURN_IF_ERROR(CheckCsrParts(m));
  } else if (kind == Kind::kGroup && enc == "csc_matrix") {
    return Status::Unsupported(where + ": csc_matrix is not read (a cell's row would scan every "
                               "column); store it as csr_matrix: adata.obsm[key] = "
                               "adata.obsm[key].tocsr()");
  } else {
    return Status::Unsupported(where + ": encoding '" + (enc.empty() ? "(none)" : enc) +
                               "' is not a matrix (obsm entries are read as dense 2-D arrays "
                               "or csr_matrix)");
  }
  if (m.n_rows != n_obs) {
    return Status::Invalid(where + ": has " + std::to_string(m.n_rows) + " rows, the file has " +
                           std::to_string(n_obs) + " cells");
  }
  return m;
}

}  // namespace

const ObsmEntry* ObsmLayout::Find(const std::string& key) const {
  for (const ObsmEntry& e : entries) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

ObsmLayout ReadObsmLayout(const ElementTree& t, int64_t n_obs) {
  ObsmLayout out;
  auto kind = t.KindOf("obsm");
  if (!kind.ok()) {
    out.error = kind.status();
    return out;
  }
  if (kind.value() == Kind::kMissing) return out;
  if (kind.value() != Kind::kGroup) {
    out.error = Status::Unsupported(t.Where("obsm") + ": not a group (anndata < 0.7 kept obsm "
                                    "as one compound dataset, which is not read)");
    return out;
  }
  auto keys = t.Children("obsm");
  if (!keys.ok()) {
    out.error = keys.status();
    return out;
  }
  for (const std::string& key : keys.value()) {
    ObsmEntry e;
    e.key = key;
    auto m = ReadObsmMatrix(t, "obsm/" + key, n_obs);
    if (m.ok()) {
      e.matrix = std::move(m).value();
    } else {
      e.error = m.status();
    }
    out.entries.push_back(std::move(e));
  }
  return out;
}

}  // namespace cellfeed::anndata
