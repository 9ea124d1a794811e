#include "h5ad/cellranger_layout.h"

#include <algorithm>
#include <cstring>

namespace cellfeed::h5ad {

namespace {

bool IsDataset(const io::H5File& f, const std::string& node) {
  return f.Kind(node) == io::NodeKind::kDataset;
}

std::vector<std::string> GenomeGroups(const io::H5File& f) {
  std::vector<std::string> out;
  auto children = f.Children("/");
  if (!children.ok()) return out;
  for (const auto& c : children.value()) {
    if (f.Kind(c) == io::NodeKind::kGroup && IsDataset(f, c + "/barcodes") &&
        IsDataset(f, c + "/genes")) {
      out.push_back(c);
    }
  }
  return out;
}

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// A 1-D dataset as a dataframe column: strings or numbers/bools.
Result<anndata::ColumnLayout> DatasetColumn(const io::H5File& f, const std::string& node,
                                   const std::string& name) {
  anndata::ColumnLayout c;
  c.info.name = name;
  c.node = node;
  if (f.IsStringDataset(node)) {
    c.info.kind = ColumnKind::kString;
    c.strings = node;
    return c;
  }
  CF_ASSIGN_OR_RETURN(c.values, f.Describe(node));
  if (c.values->shape.size() != 1) {
    return Status::Unsupported(f.path() + ": " + node + ": expected a 1-D array");
  }
  c.info.dtype = c.values->dtype;
  c.info.kind = c.values->dtype == DType::kBool ? ColumnKind::kBool : ColumnKind::kNumeric;
  return c;
}

Status AddColumn(const io::H5File& f, anndata::DataFrameLayout& df, const std::string& node,
                 const std::string& name) {
  CF_ASSIGN_OR_RETURN(auto c, DatasetColumn(f, node, name));
  int64_t n = 0;
  if (c.values) {
    n = c.values->length();
  } else {
    CF_ASSIGN_OR_RETURN(n, f.Length(node));
  }
  if (n != df.n_rows) {
    return Status::Invalid(f.path() + ": " + node + ": has " + std::to_string(n) +
                           " entries, expected " + std::to_string(df.n_rows) + " (one per " +
                           (df.element == "obs" ? "barcode" : "feature") + ")");
  }
  df.columns.push_back(std::move(c));
  return Status::OK();
}

Result<anndata::DataFrameLayout> IndexOnly(const io::H5File& f, const std::string& element,
                                  const std::string& index, int64_t expected,
                                  const std::string& what) {
  anndata::DataFrameLayout df;
  df.element = element;
  if (!IsDataset(f, index) || !f.IsStringDataset(index)) {
    return Status::Invalid(f.path() + ": " + index + ": missing or not strings (Cell Ranger " +
                           "matrices name each " + what + " there)");
  }
  df.index_dataset = index;
  CF_ASSIGN_OR_RETURN(df.n_rows, f.Length(index));
  if (df.n_rows != expected) {
    return Status::Invalid(f.path() + ": " + index + ": has " + std::to_string(df.n_rows) +
                           " entries, but the matrix shape says " + std::to_string(expected) +
                           " " + what + "s");
  }
  return df;
}

}  // namespace

bool IsCellRanger(const io::H5File& f) {
  if (f.Kind("obs") != io::NodeKind::kMissing || f.Kind("X") != io::NodeKind::kMissing) {
    return false;
  }
  if (f.Kind("matrix") == io::NodeKind::kGroup && IsDataset(f, "matrix/barcodes")) return true;
  return !GenomeGroups(f).empty();
}

Result<CellRangerLayout> ReadCellRangerLayout(const io::H5File& f, const std::string& genome) {
  const bool v3 = f.Kind("matrix") == io::NodeKind::kGroup;
  std::string g = "matrix";
  if (v3) {
    if (!genome.empty()) {
      return Status::Invalid(f.path() + ": layer '" + genome + "': a Cell Ranger v3 matrix "
                             "has one matrix holding every genome and feature type; open it "
                             "without a layer");
    }
  } else {
    const std::vector<std::string> genomes = GenomeGroups(f);
    if (genome.empty()) {
      if (genomes.size() != 1) {
        return Status::Invalid(f.path() + ": Cell Ranger v1/v2 matrix with " +
                               std::to_string(genomes.size()) + " genomes (" + Join(genomes) +
                               "): choose one with layer=GENOME");
      }
      g = genomes[0];
    } else {
      if (std::find(genomes.begin(), genomes.end(), genome) == genomes.end()) {
        return Status::Invalid(f.path() + ": genome '" + genome + "' not found (genomes: " +
                               Join(genomes) + ")");
      }
      g = genome;
    }
  }
  const std::string where = f.path() + ": " + g;
  for (const char* part : {"data", "indices", "indptr", "shape"}) {
    if (!IsDataset(f, g + "/" + part)) {
      return Status::Invalid(where + "/" + part + ": missing (a Cell Ranger matrix holds data, "
                             "indices, indptr and shape)");
    }
  }
  CellRangerLayout l;
  anndata::MatrixLayout& m = l.matrix;
  m.element = g;
  m.encoding = anndata::MatrixEncoding::kCsr;
  CF_ASSIGN_OR_RETURN(auto shape_bytes, f.ReadSmallNumeric(g + "/shape", DType::kInt64));
  if (shape_bytes.size() != 2 * sizeof(int64_t)) {
    return Status::Invalid(where + "/shape: expected 2 sizes (features, barcodes), found " +
                           std::to_string(shape_bytes.size() / sizeof(int64_t)));
  }
  int64_t shape[2];
  std::memcpy(shape, shape_bytes.data(), sizeof(shape));
  if (shape[0] < 0 || shape[1] < 0 || shape[0] > INT32_MAX) {
    return Status::Invalid(where + "/shape: implausible shape " + std::to_string(shape[0]) +
                           " x " + std::to_string(shape[1]));
  }
  // Stored genes x barcodes as CSC = barcodes x genes as CSR.
  m.n_rows = shape[1];
  m.n_cols = shape[0];
  CF_ASSIGN_OR_RETURN(m.data, f.Describe(g + "/data"));
  CF_ASSIGN_OR_RETURN(m.indices, f.Describe(g + "/indices"));
  CF_ASSIGN_OR_RETURN(m.indptr, f.Describe(g + "/indptr"));
  CF_RETURN_IF_ERROR(anndata::CheckCsrParts(m));

  CF_ASSIGN_OR_RETURN(l.obs, IndexOnly(f, "obs", g + "/barcodes", m.n_rows, "barcode"));
  if (IsDataset(f, g + "/filtered_barcodes")) {
    CF_RETURN_IF_ERROR(AddColumn(f, l.obs, g + "/filtered_barcodes", "filtered_barcodes"));
  }
  if (v3) {
    const std::string fe = g + "/features";
    if (f.Kind(fe) != io::NodeKind::kGroup) {
      return Status::Invalid(where + "/features: missing (Cell Ranger v3 names the features "
                             "there)");
    }
    CF_ASSIGN_OR_RETURN(l.var, IndexOnly(f, "var", fe + "/name", m.n_cols, "feature"));
    for (const char* part : {"id", "feature_type"}) {
      if (!IsDataset(f, fe + "/" + part)) {
        return Status::Invalid(where + "/features/" + part + ": missing");
      }
    }
    if (IsDataset(f, fe + "/gene_id")) {  // probe-barcode matrix
      CF_RETURN_IF_ERROR(AddColumn(f, l.var, fe + "/gene_id", "gene_ids"));
      CF_RETURN_IF_ERROR(AddColumn(f, l.var, fe + "/id", "probe_ids"));
    } else {
      CF_RETURN_IF_ERROR(AddColumn(f, l.var, fe + "/id", "gene_ids"));
    }
    CF_RETURN_IF_ERROR(AddColumn(f, l.var, fe + "/feature_type", "feature_types"));
    CF_ASSIGN_OR_RETURN(auto extra, f.Children(fe));
    for (const std::string& name : extra) {
      if (name == "name" || name == "id" || name == "feature_type" || name == "gene_id" ||
          name == "_all_tag_keys" || !IsDataset(f, fe + "/" + name)) {
        continue;
      }
      CF_RETURN_IF_ERROR(AddColumn(f, l.var, fe + "/" + name, name));
    }
  } else {
    CF_ASSIGN_OR_RETURN(l.var, IndexOnly(f, "var", g + "/gene_names", m.n_cols, "gene"));
    CF_RETURN_IF_ERROR(AddColumn(f, l.var, g + "/genes", "gene_ids"));
  }
  return l;
}

}  // namespace cellfeed::h5ad
