#include "h5ad/dataframe_layout.h"

#include <algorithm>

namespace cellfeed::h5ad {

bool KindHasValues(ColumnKind k) {
  return k == ColumnKind::kNumeric || k == ColumnKind::kBool || k == ColumnKind::kCategorical ||
         k == ColumnKind::kNullableInt || k == ColumnKind::kNullableBool;
}
bool KindHasMask(ColumnKind k) {
  return k == ColumnKind::kNullableInt || k == ColumnKind::kNullableBool ||
         k == ColumnKind::kNullableString;
}
bool KindHasStrings(ColumnKind k) {
  return k == ColumnKind::kString || k == ColumnKind::kNullableString;
}

namespace {

std::string EncodingOf(const io::H5File& f, const std::string& node) {
  if (!f.HasAttribute(node, "encoding-type")) return "";
  auto e = f.StringAttribute(node, "encoding-type");
  return e.ok() ? e.value() : "";
}

// Index and string columns: a string dataset, or a nullable-string-array group.
Result<std::string> StringsDataset(const io::H5File& f, const std::string& node) {
  io::NodeKind k = f.Kind(node);
  if (k == io::NodeKind::kDataset && f.IsStringDataset(node)) return node;
  if (k == io::NodeKind::kGroup && EncodingOf(f, node) == "nullable-string-array" &&
      f.IsStringDataset(node + "/values")) {
    return node + "/values";
  }
  return Status::Invalid(f.path() + ": " + node + ": expected a string array");
}

Result<std::shared_ptr<const Column>> LoadCategories(const io::H5File& f, const std::string& node) {
  auto c = std::make_shared<Column>();
  c->info.name = "categories";
  if (f.Kind(node) != io::NodeKind::kDataset) {
    return Status::Invalid(f.path() + ": " + node + ": missing categories");
  }
  if (f.IsStringDataset(node)) {
    c->info.kind = ColumnKind::kString;
    CF_ASSIGN_OR_RETURN(c->strings, f.ReadStrings(node));
    c->length = static_cast<int64_t>(c->strings.size());
    return std::shared_ptr<const Column>(c);
  }
  CF_ASSIGN_OR_RETURN(auto layout, f.Describe(node));
  c->info.kind = layout.dtype == DType::kBool ? ColumnKind::kBool : ColumnKind::kNumeric;
  c->info.dtype = layout.dtype;
  c->length = layout.length();
  CF_ASSIGN_OR_RETURN(c->values, f.ReadSmallNumeric(node, layout.dtype));
  return std::shared_ptr<const Column>(c);
}

Result<ColumnLayout> ReadColumn(const io::H5File& f, const std::string& node,
                                const std::string& name) {
  const std::string where = f.path() + ": " + node;
  ColumnLayout c;
  c.info.name = name;
  c.node = node;
  io::NodeKind kind = f.Kind(node);
  if (kind == io::NodeKind::kMissing) {
    return Status::Invalid(where + ": column listed in column-order is missing");
  }
  const std::string enc = EncodingOf(f, node);
  if (kind == io::NodeKind::kDataset) {
    if (f.HasAttribute(node, "categories")) {
      // anndata 0.7: the codes, with a reference to their categories.
      c.info.kind = ColumnKind::kCategorical;
      CF_ASSIGN_OR_RETURN(c.values, f.Describe(node));
      if (c.values->shape.size() != 1 || !DTypeIsInteger(c.values->dtype) ||
          !DTypeIsSigned(c.values->dtype)) {
        return Status::Invalid(where + ": a categorical (categories attribute) needs 1-D "
                               "signed integer codes, found " + DTypeName(c.values->dtype));
      }
      c.info.dtype = c.values->dtype;
      auto target = f.ReferenceAttribute(node, "categories");
      if (!target.ok()) return target.status();
      CF_ASSIGN_OR_RETURN(c.categories, LoadCategories(f, target.value()));
      if (f.HasAttribute(target.value(), "ordered")) {
        CF_ASSIGN_OR_RETURN(c.ordered, f.BoolAttribute(target.value(), "ordered"));
      }
      return c;
    }
    if (f.IsStringDataset(node)) {
      c.info.kind = ColumnKind::kString;
      c.strings = node;
      return c;
    }
    CF_ASSIGN_OR_RETURN(c.values, f.Describe(node));
    if (c.values->shape.size() != 1) return Status::Unsupported(where + ": column is not 1-D");
    c.info.dtype = c.values->dtype;
    c.info.kind = c.values->dtype == DType::kBool ? ColumnKind::kBool : ColumnKind::kNumeric;
    return c;
  }
  if (enc == "categorical") {
    c.info.kind = ColumnKind::kCategorical;
    CF_ASSIGN_OR_RETURN(c.values, f.Describe(node + "/codes"));
    if (!DTypeIsInteger(c.values->dtype) || !DTypeIsSigned(c.values->dtype)) {
      return Status::Invalid(where + "/codes: expected signed integer codes, found " +
                             DTypeName(c.values->dtype));
    }
    c.info.dtype = c.values->dtype;
    CF_ASSIGN_OR_RETURN(c.categories, LoadCategories(f, node + "/categories"));
    if (f.HasAttribute(node, "ordered")) {
      CF_ASSIGN_OR_RETURN(c.ordered, f.BoolAttribute(node, "ordered"));
    }
    return c;
  }
  if (enc == "nullable-integer" || enc == "nullable-boolean") {
    c.info.kind = enc == "nullable-integer" ? ColumnKind::kNullableInt : ColumnKind::kNullableBool;
    CF_ASSIGN_OR_RETURN(c.values, f.Describe(node + "/values"));
    CF_ASSIGN_OR_RETURN(c.mask, f.Describe(node + "/mask"));
    c.info.dtype = c.values->dtype;
    if (c.mask->length() != c.values->length()) {
      return Status::Invalid(where + ": mask and values differ in length");
    }
    return c;
  }
  if (enc == "nullable-string-array") {
    c.info.kind = ColumnKind::kNullableString;
    CF_ASSIGN_OR_RETURN(c.strings, StringsDataset(f, node));
    CF_ASSIGN_OR_RETURN(c.mask, f.Describe(node + "/mask"));
    return c;
  }
  return Status::Unsupported(where + ": column encoding '" + (enc.empty() ? "(none)" : enc) +
                             "' is not supported");
}

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
        CF_ASSIGN_OR_RETURN(auto categories, LoadCategories(f, cats));
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

const ColumnLayout* DataFrameLayout::Find(const std::string& name) const {
  for (const ColumnLayout& c : columns) {
    if (c.info.name == name) return &c;
  }
  return nullptr;
}

Result<DataFrameLayout> ReadDataFrameLayout(const io::H5File& f, const std::string& element,
                                            const std::string& uns) {
  const std::string where = f.path() + ": " + element;
  io::NodeKind kind = f.Kind(element);
  if (kind == io::NodeKind::kMissing) return Status::Invalid(where + ": missing dataframe");
  if (kind == io::NodeKind::kDataset) {
    if (!f.IsCompoundDataset(element)) {
      return Status::Invalid(where + ": a dataframe must be a group (anndata >= 0.7) or a "
                             "compound dataset (anndata < 0.7)");
    }
    return ReadCompoundDataFrame(f, element, uns);
  }
  const std::string enc = EncodingOf(f, element);
  if (enc != "dataframe") {
    return Status::Unsupported(where + ": encoding-type '" + enc + "', expected 'dataframe'");
  }
  DataFrameLayout df;
  df.element = element;
  CF_ASSIGN_OR_RETURN(auto index_name, f.StringAttribute(element, "_index"));
  CF_ASSIGN_OR_RETURN(df.index_dataset, StringsDataset(f, element + "/" + index_name));
  CF_ASSIGN_OR_RETURN(df.n_rows, f.Length(df.index_dataset));
  std::vector<std::string> order;
  if (f.HasAttribute(element, "column-order")) {
    CF_ASSIGN_OR_RETURN(order, f.StringListAttribute(element, "column-order"));
  }
  for (const std::string& name : order) {
    CF_ASSIGN_OR_RETURN(auto col, ReadColumn(f, element + "/" + name, name));
    int64_t length = 0;
    if (col.values) {
      length = col.values->length();
    } else {
      CF_ASSIGN_OR_RETURN(length, f.Length(col.strings));
    }
    if (col.mask && col.mask->length() != length) {
      return Status::Invalid(f.path() + ": " + col.node + "/mask: has " +
                             std::to_string(col.mask->length()) + " entries, values have " +
                             std::to_string(length));
    }
    if (length != df.n_rows) {
      return Status::Invalid(f.path() + ": " + col.node + ": has " + std::to_string(length) +
                             " rows, the " + element + " index has " + std::to_string(df.n_rows));
    }
    df.columns.push_back(std::move(col));
  }
  return df;
}

}  // namespace cellfeed::h5ad
