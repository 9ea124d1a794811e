#include "h5ad/dataframe_layout.h"

namespace cellfeed::h5ad {


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
      return Status::Unsupported(where + ": anndata 0.7 categorical layout (categories "
                                 "attribute) is not supported yet");
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

}  // namespace

const ColumnLayout* DataFrameLayout::Find(const std::string& name) const {
  for (const ColumnLayout& c : columns) {
    if (c.info.name == name) return &c;
  }
  return nullptr;
}

Result<DataFrameLayout> ReadDataFrameLayout(const io::H5File& f, const std::string& element) {
  const std::string where = f.path() + ": " + element;
  io::NodeKind kind = f.Kind(element);
  if (kind == io::NodeKind::kMissing) return Status::Invalid(where + ": missing dataframe");
  if (kind == io::NodeKind::kDataset) {
    return Status::Unsupported(where + ": anndata < 0.7 dataframe layout (one compound "
                               "dataset) is not supported yet");
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
