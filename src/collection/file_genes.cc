// Each file's own genes, for mapping files onto a vocabulary (transform::MapGenes).
#include <numeric>

#include "cellfeed/collection.h"
#include "collection/collection_impl.h"
#include "h5ad/column_reader.h"

namespace cellfeed {

Result<std::vector<std::string>> Collection::FileGeneIds(size_t file,
                                                         const std::string& column) const {
  if (file >= impl_->files.size()) return Status::OutOfRange("no file " + std::to_string(file));
  const auto& f = *impl_->files[file];
  if (column.empty()) return f.var_names();
  const anndata::ColumnLayout* c = f.var().Find(column);
  if (!c) {
    std::string have;
    for (const auto& col : f.var().columns) have += (have.empty() ? "" : ", ") + col.info.name;
    return Status::Invalid(f.path() + ": var column '" + column + "' not found (columns: " +
                           (have.empty() ? "none" : have) + ")");
  }
  std::vector<int64_t> rows(static_cast<size_t>(f.var().n_rows));
  std::iota(rows.begin(), rows.end(), 0);
  CF_ASSIGN_OR_RETURN(Column col, f.ReadColumn(*c, rows, *impl_->pool));
  if (col.info.kind == ColumnKind::kString || col.info.kind == ColumnKind::kNullableString) {
    for (size_t i = 0; i < col.mask.size() && i < col.strings.size(); ++i)
      if (col.mask[i]) col.strings[i].clear();
    return col.strings;
  }
  if (col.info.kind == ColumnKind::kCategorical && col.categories &&
      col.categories->info.kind == ColumnKind::kString) {
    std::vector<int64_t> codes(static_cast<size_t>(col.length));
    ConvertElements(col.info.dtype, col.values.data(), DType::kInt64, codes.data(), codes.size());
    std::vector<std::string> out(codes.size());
    const auto& labels = col.categories->strings;
    for (size_t i = 0; i < codes.size(); ++i) {
      if (codes[i] >= 0 && codes[i] < static_cast<int64_t>(labels.size())) out[i] = labels[codes[i]];
    }
    return out;
  }
  return Status::Invalid(f.path() + ": var column '" + column + "' is " +
                         ColumnKindName(col.info.kind) +
                         ", expected strings or string categories (gene names or IDs)");
}

std::vector<int32_t> Collection::FileGeneColumns(size_t file) const {
  const auto& map = impl_->gene_maps[file];
  if (!map.empty()) return map;
  std::vector<int32_t> identity(impl_->files[file]->var_names().size());
  std::iota(identity.begin(), identity.end(), 0);
  return identity;
}

}  // namespace cellfeed
