#include "zarr/anndata_store.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstring>

#include "h5ad/anndata_file.h"
#include "h5ad/column_reader.h"
#include "h5ad/file_summary.h"
#include "io/array_reader.h"
#include "storage/object_url.h"
#include "zarr/chunk_table.h"

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

Result<h5ad::MatrixLayout> ZarrAnnData::ReadMatrix(const std::string& e) {
  const std::string where = h_->Where(e);
  CF_ASSIGN_OR_RETURN(Node n, h_->Get(e));
  CF_ASSIGN_OR_RETURN(auto enc, StringAttr(n, "encoding-type", where));
  const std::string encoding = enc.value_or("");
  h5ad::MatrixLayout m;
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
    m.encoding = h5ad::MatrixEncoding::kCsr;
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
    CF_RETURN_IF_ERROR(h5ad::CheckCsrParts(m));
    return m;
  }
  if (!encoding.empty() && encoding != "array") {
    return Status::Unsupported(where + ": matrix encoding '" + encoding + "' is not supported");
  }
  m.encoding = h5ad::MatrixEncoding::kDense;
  CF_ASSIGN_OR_RETURN(m.data, Array(e));
  if (m.data.shape.size() != 2) return Status::Invalid(where + ": dense matrix must be 2-D");
  m.n_rows = m.data.shape[0];
  m.n_cols = m.data.shape[1];
  return m;
}

Result<std::shared_ptr<const Column>> ZarrAnnData::LoadWhole(const std::string& node,
                                                             ColumnKind kind) {
  const std::string where = h_->Where(node);
  CF_ASSIGN_OR_RETURN(Node n, h_->Get(node));
  if (n.kind != Node::Kind::kArray) return Status::Invalid(where + ": missing array");
  CF_ASSIGN_OR_RETURN(ArrayMeta meta, ParseArray(n, where));
  auto c = std::make_shared<Column>();
  c->info.kind = kind;
  if (meta.is_string) {
    CF_ASSIGN_OR_RETURN(c->strings, ReadStringArray(*h_, node, meta));
    c->length = static_cast<int64_t>(c->strings.size());
    c->info.kind = ColumnKind::kString;
    return std::shared_ptr<const Column>(c);
  }
  if (meta.shape.size() != 1) return Status::Invalid(where + ": expected a 1-D array");
  CF_ASSIGN_OR_RETURN(io::DatasetLayout L, DescribeArray(*h_, node, meta));
  c->info.dtype = L.dtype;
  c->info.kind = L.dtype == DType::kBool ? ColumnKind::kBool : ColumnKind::kNumeric;
  c->length = L.length();
  c->values.resize(static_cast<size_t>(c->length) * DTypeSize(L.dtype));
  util::ThreadPool here(1);
  io::ArrayRead r{&L, &file(), {{0, c->length, 0}}, L.dtype, c->values.data()};
  CF_RETURN_IF_ERROR(io::ReadArrays(std::span<io::ArrayRead>(&r, 1), here));
  return std::shared_ptr<const Column>(c);
}

Result<h5ad::ColumnLayout> ZarrAnnData::ReadColumnLayout(const std::string& node,
                                                         const std::string& name) {
  const std::string where = h_->Where(node);
  h5ad::ColumnLayout c;
  c.info.name = name;
  c.node = node;
  CF_ASSIGN_OR_RETURN(Node n, h_->Get(node));
  if (n.kind == Node::Kind::kMissing) {
    return Status::Invalid(where + ": column listed in column-order is missing");
  }
  CF_ASSIGN_OR_RETURN(auto enc_attr, StringAttr(n, "encoding-type", where));
  const std::string enc = enc_attr.value_or("");
  if (n.kind == Node::Kind::kArray) {
    CF_ASSIGN_OR_RETURN(ArrayMeta meta, ParseArray(n, where));
    if (meta.shape.size() != 1) return Status::Unsupported(where + ": column is not 1-D");
    if (meta.is_string) {
      c.info.kind = ColumnKind::kString;
      CF_ASSIGN_OR_RETURN(c.whole, LoadWhole(node, ColumnKind::kString));
      return c;
    }
    CF_ASSIGN_OR_RETURN(c.values, DescribeArray(*h_, node, meta));
    c.info.dtype = c.values->dtype;
    c.info.kind = c.values->dtype == DType::kBool ? ColumnKind::kBool : ColumnKind::kNumeric;
    return c;
  }
  if (enc == "categorical") {
    c.info.kind = ColumnKind::kCategorical;
    ArrayMeta meta;
    CF_ASSIGN_OR_RETURN(c.values, Array(node + "/codes", &meta));
    if (!DTypeIsInteger(c.values->dtype) || !DTypeIsSigned(c.values->dtype) ||
        c.values->shape.size() != 1) {
      return Status::Invalid(where + "/codes: expected 1-D signed integer codes, found " +
                             DTypeName(c.values->dtype));
    }
    c.info.dtype = c.values->dtype;
    CF_ASSIGN_OR_RETURN(auto cats, LoadWhole(node + "/categories", ColumnKind::kString));
    auto named = std::make_shared<Column>(*cats);
    named->info.name = "categories";
    c.categories = named;
    CF_ASSIGN_OR_RETURN(auto ordered, BoolAttr(n, "ordered", where));
    c.ordered = ordered.value_or(false);
    return c;
  }
  if (enc == "nullable-integer" || enc == "nullable-boolean") {
    c.info.kind = enc == "nullable-integer" ? ColumnKind::kNullableInt : ColumnKind::kNullableBool;
    CF_ASSIGN_OR_RETURN(c.values, Array(node + "/values"));
    CF_ASSIGN_OR_RETURN(c.mask, Array(node + "/mask"));
    c.info.dtype = c.values->dtype;
    if (c.mask->dtype != DType::kBool) {
      return Status::Invalid(where + "/mask: expected a bool array, found " + DTypeName(c.mask->dtype));
    }
    if (c.mask->length() != c.values->length()) {
      return Status::Invalid(where + ": mask and values differ in length");
    }
    return c;
  }
  if (enc == "nullable-string-array") {
    c.info.kind = ColumnKind::kNullableString;
    CF_ASSIGN_OR_RETURN(auto strings, LoadWhole(node + "/values", ColumnKind::kString));
    if (strings->info.kind != ColumnKind::kString) {
      return Status::Invalid(where + "/values: expected a string array");
    }
    CF_ASSIGN_OR_RETURN(auto mask, LoadWhole(node + "/mask", ColumnKind::kBool));
    if (mask->info.kind != ColumnKind::kBool || mask->length != strings->length) {
      return Status::Invalid(where + "/mask: expected a bool array as long as values");
    }
    auto whole = std::make_shared<Column>(*strings);
    whole->info.kind = ColumnKind::kNullableString;
    whole->mask = mask->values;
    c.whole = whole;
    return c;
  }
  return Status::Unsupported(where + ": column encoding '" + (enc.empty() ? "(none)" : enc) +
                             "' is not supported");
}

Result<h5ad::DataFrameLayout> ZarrAnnData::ReadDataFrame(const std::string& element) {
  const std::string where = h_->Where(element);
  CF_ASSIGN_OR_RETURN(Node n, h_->Get(element));
  if (n.kind == Node::Kind::kMissing) return Status::Invalid(where + ": missing dataframe");
  if (n.kind != Node::Kind::kGroup) return Status::Invalid(where + ": expected a dataframe group");
  CF_ASSIGN_OR_RETURN(auto enc, StringAttr(n, "encoding-type", where));
  if (!enc || *enc != "dataframe") {
    return Status::Unsupported(where + ": encoding-type '" + enc.value_or("(none)") +
                               "' (dataframe expected)");
  }
  CF_ASSIGN_OR_RETURN(auto index, StringAttr(n, "_index", where));
  if (!index) return Status::Invalid(where + ": attribute '_index' is missing");
  CF_ASSIGN_OR_RETURN(auto order, StringListAttr(n, "column-order", where));
  h5ad::DataFrameLayout df;
  df.element = element;
  CF_ASSIGN_OR_RETURN(Node in, h_->Get(element + "/" + *index));
  CF_ASSIGN_OR_RETURN(auto ienc, StringAttr(in, "encoding-type", h_->Where(element + "/" + *index)));
  const std::string index_node =
      element + "/" + *index + (in.kind == Node::Kind::kGroup && ienc == "nullable-string-array"
                                    ? "/values" : "");
  CF_ASSIGN_OR_RETURN(auto idx, LoadWhole(index_node, ColumnKind::kString));
  if (idx->info.kind != ColumnKind::kString) {
    return Status::Invalid(h_->Where(index_node) + ": the index must be a string array, found " +
                           DTypeName(idx->info.dtype));
  }
  df.index_values = std::make_shared<const std::vector<std::string>>(idx->strings);
  df.n_rows = idx->length;
  for (const std::string& name : order.value_or(std::vector<std::string>{})) {
    CF_ASSIGN_OR_RETURN(auto col, ReadColumnLayout(element + "/" + name, name));
    const int64_t len = col.whole ? col.whole->length : col.values ? col.values->length() : -1;
    if (len != df.n_rows) {
      return Status::Invalid(h_->Where(col.node) + ": has " + std::to_string(len) +
                             " rows, the index has " + std::to_string(df.n_rows));
    }
    df.columns.push_back(std::move(col));
  }
  return df;
}

FileSummary ZarrAnnData::Summarize() const {
  const std::string storage = "zarr v" + std::to_string(h_->zarr_format()) +
                              (h_->store().is_zip() ? " zip" : "");
  return h5ad::SummarizeAnnData(path_, matrix_, n_obs(), n_vars(), obs_, var_, storage);
}

Result<std::vector<std::string>> ZarrAnnData::ReadIndex(const h5ad::DataFrameLayout& df,
                                                        std::span<const int64_t> rows) const {
  std::vector<std::string> out;
  out.reserve(rows.size());
  for (int64_t r : rows) out.push_back((*df.index_values)[static_cast<size_t>(r)]);
  return out;
}

Result<Column> ZarrAnnData::ReadColumn(const h5ad::ColumnLayout& c, std::span<const int64_t> rows,
                                       util::ThreadPool& pool) const {
  if (c.whole) return h5ad::GatherColumn(c, rows);
  CF_RETURN_IF_ERROR(CheckUnchanged());
  return h5ad::ReadColumnArrays(file(), path_, c, rows, pool);
}

}  // namespace cellfeed::zarr
