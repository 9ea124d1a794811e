#include "h5ad/h5_dataframe_layout.h"

#include <algorithm>

#include "h5ad/h5_element_tree.h"

namespace cellfeed::h5ad {

using anndata::ColumnLayout;
using anndata::DataFrameLayout;
using anndata::LoadCategories;

namespace {

// anndata < 0.7: one compound dataset, the first field the index. Loaded whole (obs and
// var are small next to X, and a field is strided across records).
Result<DataFrameLayout> ReadCompoundDataFrame(const io::H5File& f, const std::string& element,
                                              const std::string& uns) {
  const std::string where = f.path() + ": " + element;
  CF_ASSIGN_OR_RETURN(auto fields, f.ReadCompound(element));
  if (fields.empty() || !fields[0].is_string) {
    return Status::Invalid(where + ": compound dataframe (anndata < 0.7) must start with a "
                           "string index field");
  }
  DataFrameLayout df;
  df.element = element;
  df.n_rows = static_cast<int64_t>(fields[0].strings.size());
  df.index_values = std::make_shared<const std::vector<std::string>>(std::move(fields[0].strings));
  for (size_t i = 1; i < fields.size(); ++i) {
    auto& fld = fields[i];
    ColumnLayout c;
    c.info.name = fld.name;
    c.node = element + " field '" + fld.name + "'";
    auto col = std::make_shared<Column>();
    col->length = df.n_rows;
    if (fld.is_string) {
      c.info.kind = ColumnKind::kString;
      col->strings = std::move(fld.strings);
    } else {
      c.info.dtype = fld.dtype;
      c.info.kind = fld.dtype == DType::kBool ? ColumnKind::kBool : ColumnKind::kNumeric;
      col->values = std::move(fld.values);
      const std::string cats = uns.empty() ? "" : uns + "/" + fld.name + "_categories";
      if (!cats.empty() && DTypeIsInteger(fld.dtype) &&
          f.Kind(cats) == io::NodeKind::kDataset) {
        // As anndata (_clean_uns): categorical when every code is below the number of
        // categories; else the categories belong to the other axis and this stays numeric.
        CF_ASSIGN_OR_RETURN(auto categories, LoadCategories(H5ElementTree(f), cats));
        std::vector<int64_t> codes(static_cast<size_t>(df.n_rows));
        ConvertElements(fld.dtype, col->values.data(), DType::kInt64, codes.data(), codes.size());
        const bool below = std::all_of(codes.begin(), codes.end(),
                                       [&](int64_t v) { return v < categories->length; });
        if (below) {
          if (!DTypeIsSigned(fld.dtype)) {
            return Status::Invalid(where + " field '" + fld.name + "': categorical codes "
                                   "must be signed integers, found " + DTypeName(fld.dtype));
          }
          for (size_t r = 0; r < codes.size(); ++r) {
            if (codes[r] < -1) {
              return Status::Invalid(where + " field '" + fld.name + "': code " +
                                     std::to_string(codes[r]) + " at row " + std::to_string(r) +
                                     " is outside [-1, " + std::to_string(categories->length) +
                                     ") (categories in " + cats + ")");
            }
          }
          c.info.kind = ColumnKind::kCategorical;
          c.categories = std::move(categories);
        }
      }
    }
    col->info = c.info;
    c.whole = std::move(col);
    df.columns.push_back(std::move(c));
  }
  return df;
}

}  // namespace

Result<DataFrameLayout> ReadDataFrameLayout(const io::H5File& f, const std::string& element,
                                            const std::string& uns) {
  if (f.Kind(element) == io::NodeKind::kDataset && f.IsCompoundDataset(element)) {
    return ReadCompoundDataFrame(f, element, uns);
  }
  return ReadDataFrameLayout(H5ElementTree(f), element);
}

}  // namespace cellfeed::h5ad
