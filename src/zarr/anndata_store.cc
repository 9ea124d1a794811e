#include "zarr/anndata_store.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstring>

#include "h5ad/anndata_file.h"
#include "h5ad/column_reader.h"
#include "anndata/file_summary.h"
#include "io/array_reader.h"
#include "storage/object_url.h"
#include "zarr/chunk_table.h"
#include "zarr/element_tree.h"

namespace cellfeed::zarr {

bool LooksLikeZarr(const std::string& path) {
  // An object URL: a zip store by its name (.zip); the formats read no other URL yet.
  if (storage::ObjectUrl::IsUrl(path)) {
    const std::string bare = path.substr(0, path.find_first_of("?#"));
    return bare.size() > 4 && bare.compare(bare.size() - 4, 4, ".zip") == 0;
  }
  struct stat st;
  std::string file = path;
  if (::stat(path.c_str(), &st) != 0) {
    // A group inside a zip file ("coll.zip/dataset_0"): the zip's signature decides.
    auto in = SplitInsideFile(path);
    if (!in) return false;
    file = in->file;
  } else if (S_ISDIR(st.st_mode)) {
    return true;
  }
  unsigned char sig[4] = {0, 0, 0, 0};
  FILE* f = std::fopen(file.c_str(), "rb");
  if (!f) return false;
  const size_t n = std::fread(sig, 1, 4, f);
  std::fclose(f);
  return n == 4 && sig[0] == 'P' && sig[1] == 'K' &&
         ((sig[2] == 3 && sig[3] == 4) || (sig[2] == 5 && sig[3] == 6));
}

Result<std::vector<std::string>> ExpandCollection(const std::string& path) {
  if (!LooksLikeZarr(path)) return std::vector<std::string>{path};
  CF_ASSIGN_OR_RETURN(auto h, Hierarchy::Open(path));
  CF_ASSIGN_OR_RETURN(Node root, h->Get(""));
  CF_ASSIGN_OR_RETURN(auto enc, StringAttr(root, "encoding-type", h->Where("")));
  if (!enc || *enc != "annbatch-preshuffled") return std::vector<std::string>{path};
  std::vector<std::string> out;
  for (int i = 0;; ++i) {
    const std::string name = "dataset_" + std::to_string(i);
    CF_ASSIGN_OR_RETURN(Node n, h->Get(name));
    if (n.kind == Node::Kind::kMissing) break;
    if (n.kind != Node::Kind::kGroup) {
      return Status::Invalid(h->Where(name) + ": an annbatch dataset must be a group");
    }
    out.push_back(path + "/" + name);
  }
  if (out.empty()) {
    return Status::Invalid(path + ": an annbatch collection (encoding-type annbatch-preshuffled) "
                           "without datasets (dataset_0 missing)");
  }
  return out;
}

Result<std::unique_ptr<ZarrAnnData>> ZarrAnnData::Open(const std::string& path,
                                                       const std::string& layer) {
  auto z = std::unique_ptr<ZarrAnnData>(new ZarrAnnData());
  z->path_ = path;
  CF_ASSIGN_OR_RETURN(z->h_, Hierarchy::Open(path));
  CF_ASSIGN_OR_RETURN(Node root, z->h_->Get(""));
  if (root.kind != Node::Kind::kGroup) {
    return Status::Invalid(path + ": the store's root is not a group (not an AnnData store)");
  }
  CF_ASSIGN_OR_RETURN(auto enc, StringAttr(root, "encoding-type", z->h_->Where("")));
  if (enc && *enc == "annbatch-preshuffled") {
    return Status::Invalid(path + ": an annbatch collection; open it with cellfeed.open(path), "
                           "which reads its dataset_<i> groups as one collection");
  }
  if (enc && *enc != "anndata") {
    return Status::Invalid(path + ": root encoding-type '" + *enc +
                           "' (an AnnData store has 'anndata')");
  }
  CF_RETURN_IF_ERROR(z->OpenAnnData(layer));
  return z;
}

std::string ZarrAnnData::ListLayers() const {
  std::string have;
  for (const auto& c : h_->Children("layers")) have += (have.empty() ? "" : ", ") + c;
  return have.empty() ? "none" : have;
}

Status ZarrAnnData::OpenAnnData(const std::string& layer) {
  const h5ad::ElementNames names = h5ad::ElementsForLayer(layer);
  auto exists = [&](const std::string& n) -> Result<bool> {
    CF_ASSIGN_OR_RETURN(Node node, h_->Get(n));
    return node.kind != Node::Kind::kMissing;
  };
  CF_ASSIGN_OR_RETURN(bool have_matrix, exists(names.matrix));
  if (!have_matrix) {
    if (names.matrix == "X") {
      CF_ASSIGN_OR_RETURN(bool raw, exists("raw/X"));
      const std::string layers = ListLayers();
      if (layers == "none" && !raw) {
        return Status::Invalid(path_ + ": X: missing, and there are no layers or raw/X to read "
                               "instead (not an AnnData store?)");
      }
      return Status::Invalid(path_ + ": X: missing (X is absent: written with X=None); open a "
                             "layer instead: layer=NAME for one of the layers (" + layers + ")" +
                             (raw ? " or layer='raw' for raw/X" : ""));
    }
    if (names.matrix == "raw/X") {
      return Status::Invalid(path_ + ": raw/X: missing: layer 'raw' cannot be read (layers: " +
                             ListLayers() + ")");
    }
    return Status::Invalid(path_ + ": layer '" + layer + "' not found (layers: " + ListLayers() +
                           ")");
  }
  CF_ASSIGN_OR_RETURN(matrix_, ReadMatrix(names.matrix));
  CF_ASSIGN_OR_RETURN(obs_, ReadDataFrame("obs"));
  CF_ASSIGN_OR_RETURN(var_, ReadDataFrame(names.var));
  if (obs_.n_rows != matrix_.n_rows) {
    return Status::Invalid(path_ + ": obs has " + std::to_string(obs_.n_rows) + " rows but " +
                           names.matrix + " has " + std::to_string(matrix_.n_rows));
  }
  if (var_.n_rows != matrix_.n_cols) {
    return Status::Invalid(path_ + ": " + names.var + " has " + std::to_string(var_.n_rows) +
                           " rows but " + names.matrix + " has " + std::to_string(matrix_.n_cols) +
                           " columns");
  }
  obsm_ = anndata::ReadObsmLayout(ZarrElementTree(*h_), matrix_.n_rows);
  return Status::OK();
}

Result<io::DatasetLayout> ZarrAnnData::Array(const std::string& node, ArrayMeta* meta_out) {
  CF_ASSIGN_OR_RETURN(Node n, h_->Get(node));
  const std::string where = h_->Where(node);
  if (n.kind == Node::Kind::kMissing) return Status::Invalid(where + ": missing array");
  if (n.kind != Node::Kind::kArray) return Status::Invalid(where + ": expected an array, found a group");
  CF_ASSIGN_OR_RETURN(ArrayMeta meta, ParseArray(n, where));
  if (meta.is_string) return Status::Invalid(where + ": expected a numeric array, found strings");
  if (meta_out) *meta_out = meta;
  return DescribeArray(*h_, node, meta);
}

Result<anndata::MatrixLayout> ZarrAnnData::ReadMatrix(const std::string& e) {
  const std::string where = h_->Where(e);
  CF_ASSIGN_OR_RETURN(Node n, h_->Get(e));
  CF_ASSIGN_OR_RETURN(auto enc, StringAttr(n, "encoding-type", where));
  const std::string encoding = enc.value_or("");
  anndata::MatrixLayout m;
  m.element = e;
  if (n.kind == Node::Kind::kGroup) {
    if (encoding == "csc_matrix") {
      return Status::Unsupported(where + ": csc_matrix is not supported (reading a cell from CSC "
                                 "scans every gene's column); convert once to csr_matrix: adata = "
                                 "anndata.read_zarr(path); adata.X = adata.X.tocsr(); "
                                 "adata.write_zarr(path) (see docs/ERRORS.md)");
    }
    if (encoding != "csr_matrix") {
      return Status::Unsupported(where + ": matrix encoding '" +
                                 (encoding.empty() ? std::string("(none)") : encoding) +
                                 "' is not supported (csr_matrix or array expected)");
    }
    m.encoding = anndata::MatrixEncoding::kCsr;
    CF_ASSIGN_OR_RETURN(auto shape, IntListAttr(n, "shape", where));
    if (!shape || shape->size() != 2) {
      return Status::Invalid(where + ": attribute 'shape' must hold 2 sizes");
    }
    m.n_rows = (*shape)[0];
    m.n_cols = (*shape)[1];
    if (m.n_cols > INT32_MAX) return Status::Unsupported(where + ": more than 2^31-1 columns");
    for (const char* part : {"data", "indices", "indptr"}) {
      CF_ASSIGN_OR_RETURN(Node p, h_->Get(e + "/" + part));
      if (p.kind != Node::Kind::kArray) {
        return Status::Invalid(where + "/" + part + ": missing (csr_matrix needs data, indices "
                               "and indptr)");
      }
    }
    CF_ASSIGN_OR_RETURN(m.data, Array(e + "/data"));
    CF_ASSIGN_OR_RETURN(m.indices, Array(e + "/indices"));
    CF_ASSIGN_OR_RETURN(m.indptr, Array(e + "/indptr"));
    CF_RETURN_IF_ERROR(anndata::CheckCsrParts(m));
    return m;
  }
  if (!encoding.empty() && encoding != "array") {
    return Status::Unsupported(where + ": matrix encoding '" + encoding + "' is not supported");
  }
  m.encoding = anndata::MatrixEncoding::kDense;
  CF_ASSIGN_OR_RETURN(m.data, Array(e));
  if (m.data.shape.size() != 2) return Status::Invalid(where + ": dense matrix must be 2-D");
  m.n_rows = m.data.shape[0];
  m.n_cols = m.data.shape[1];
  return m;
}

Result<anndata::DataFrameLayout> ZarrAnnData::ReadDataFrame(const std::string& element) {
  return anndata::ReadDataFrameLayout(ZarrElementTree(*h_), element);
}

FileSummary ZarrAnnData::Summarize() const {
  const std::string storage = "zarr v" + std::to_string(h_->zarr_format()) +
                              (h_->store().is_zip() ? " zip" : "");
  return anndata::SummarizeAnnData(path_, matrix_, n_obs(), n_vars(), obs_, var_, storage);
}

Result<std::vector<std::string>> ZarrAnnData::ReadIndex(const anndata::DataFrameLayout& df,
                                                        std::span<const int64_t> rows) const {
  std::vector<std::string> out;
  out.reserve(rows.size());
  for (int64_t r : rows) out.push_back((*df.index_values)[static_cast<size_t>(r)]);
  return out;
}

Result<Column> ZarrAnnData::ReadColumn(const anndata::ColumnLayout& c, std::span<const int64_t> rows,
                                       util::ThreadPool& pool) const {
  if (c.whole) return h5ad::GatherColumn(c, rows);
  CF_RETURN_IF_ERROR(CheckUnchanged());
  return h5ad::ReadColumnArrays(file(), path_, c, rows, pool);
}

}  // namespace cellfeed::zarr
