#include "anndata/dataframe_layout.h"

#include <algorithm>

namespace cellfeed::anndata {

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

Result<std::shared_ptr<const Column>> LoadCategories(const ElementTree& t,
                                                     const std::string& node) {
  CF_ASSIGN_OR_RETURN(ElementTree::Kind k, t.KindOf(node));
  if (k != ElementTree::Kind::kArray) return Status::Invalid(t.Where(node) + ": missing categories");
  CF_ASSIGN_OR_RETURN(auto loaded, t.LoadWhole(node));
  auto c = std::make_shared<Column>(*loaded);
  c->info.name = "categories";
  return std::shared_ptr<const Column>(c);
}

namespace {

using Kind = ElementTree::Kind;

Result<std::string> EncodingOf(const ElementTree& t, const std::string& node) {
  CF_ASSIGN_OR_RETURN(auto e, t.StringAttr(node, "encoding-type"));
  return e.value_or("");
}

// Index and string columns: a string array, or a nullable-string-array group.
Result<std::string> StringsArray(const ElementTree& t, const std::string& node) {
  CF_ASSIGN_OR_RETURN(Kind k, t.KindOf(node));
  if (k == Kind::kArray) {
    CF_ASSIGN_OR_RETURN(bool strings, t.IsStrings(node));
    if (strings) return node;
  }
  if (k == Kind::kGroup) {
    CF_ASSIGN_OR_RETURN(std::string enc, EncodingOf(t, node));
    CF_ASSIGN_OR_RETURN(Kind vk, t.KindOf(node + "/values"));
    if (enc == "nullable-string-array" && vk == Kind::kArray) {
      CF_ASSIGN_OR_RETURN(bool strings, t.IsStrings(node + "/values"));
      if (strings) return node + "/values";
    }
  }
  return Status::Invalid(t.Where(node) + ": expected a string array");
}

// Codes of a categorical: a 1-D array of signed integers (-1 = missing).
Status CheckCodes(const ElementTree& t, const std::string& node, const io::DatasetLayout& codes,
                  const std::string& what) {
  if (!DTypeIsInteger(codes.dtype) || !DTypeIsSigned(codes.dtype)) {
    return Status::Invalid(t.Where(node) + ": " + what + ": expected signed integer codes, found " +
                           DTypeName(codes.dtype));
  }
  if (codes.shape.size() != 1) {
    return Status::Invalid(t.Where(node) + ": " + what + ": expected 1-D codes, found " +
                           std::to_string(codes.shape.size()) + "-D");
  }
  return Status::OK();
}

// A string array as a column part: named for reading by row, or loaded now.
Status SetStrings(const ElementTree& t, const std::string& node, ColumnLayout& c) {
  if (t.StringsByRow()) {
    c.strings = node;
    return Status::OK();
  }
  CF_ASSIGN_OR_RETURN(auto whole, t.LoadWhole(node));
  auto named = std::make_shared<Column>(*whole);
  named->info = c.info;
  c.whole = std::move(named);
  return Status::OK();
}

Result<ColumnLayout> ReadColumn(const ElementTree& t, const std::string& node,
                                const std::string& name) {
  const std::string where = t.Where(node);
  ColumnLayout c;
  c.info.name = name;
  c.node = node;
  CF_ASSIGN_OR_RETURN(Kind kind, t.KindOf(node));
  if (kind == Kind::kMissing) {
    return Status::Invalid(where + ": column listed in column-order is missing");
  }
  CF_ASSIGN_OR_RETURN(const std::string enc, EncodingOf(t, node));
  if (kind == Kind::kArray) {
    CF_ASSIGN_OR_RETURN(auto target, t.CategoriesTarget(node));
    if (target) {
      // anndata 0.7 (h5ad and zarr): the codes, with a reference to their categories.
      c.info.kind = ColumnKind::kCategorical;
      CF_ASSIGN_OR_RETURN(c.values, t.Describe(node));
      CF_RETURN_IF_ERROR(CheckCodes(t, node, *c.values, "categorical (categories attribute)"));
      c.info.dtype = c.values->dtype;
      CF_ASSIGN_OR_RETURN(c.categories, LoadCategories(t, *target));
      CF_ASSIGN_OR_RETURN(auto ordered, t.BoolAttr(*target, "ordered"));
      c.ordered = ordered.value_or(false);
      return c;
    }
    CF_ASSIGN_OR_RETURN(bool strings, t.IsStrings(node));
    if (strings) {
      c.info.kind = ColumnKind::kString;
      CF_RETURN_IF_ERROR(SetStrings(t, node, c));
      return c;
    }
    CF_ASSIGN_OR_RETURN(c.values, t.Describe(node));
    if (c.values->shape.size() != 1) return Status::Unsupported(where + ": column is not 1-D");
    c.info.dtype = c.values->dtype;
    c.info.kind = c.values->dtype == DType::kBool ? ColumnKind::kBool : ColumnKind::kNumeric;
    return c;
  }
  if (enc == "categorical") {
    c.info.kind = ColumnKind::kCategorical;
    CF_ASSIGN_OR_RETURN(c.values, t.Describe(node + "/codes"));
    CF_RETURN_IF_ERROR(CheckCodes(t, node + "/codes", *c.values, "categorical"));
    c.info.dtype = c.values->dtype;
    CF_ASSIGN_OR_RETURN(c.categories, LoadCategories(t, node + "/categories"));
    CF_ASSIGN_OR_RETURN(auto ordered, t.BoolAttr(node, "ordered"));
    c.ordered = ordered.value_or(false);
    return c;
  }
  if (enc == "nullable-integer" || enc == "nullable-boolean") {
    c.info.kind = enc == "nullable-integer" ? ColumnKind::kNullableInt : ColumnKind::kNullableBool;
    CF_ASSIGN_OR_RETURN(c.values, t.Describe(node + "/values"));
    CF_ASSIGN_OR_RETURN(c.mask, t.Describe(node + "/mask"));
    c.info.dtype = c.values->dtype;
    if (c.mask->dtype != DType::kBool) {
      return Status::Invalid(where + "/mask: expected a bool array, found " +
                             DTypeName(c.mask->dtype));
    }
    if (c.mask->length() != c.values->length()) {
      return Status::Invalid(where + ": mask and values differ in length");
    }
    return c;
  }
  if (enc == "nullable-string-array") {
    c.info.kind = ColumnKind::kNullableString;
    CF_ASSIGN_OR_RETURN(const std::string values, StringsArray(t, node));
    if (t.StringsByRow()) {
      c.strings = values;
      CF_ASSIGN_OR_RETURN(c.mask, t.Describe(node + "/mask"));
      return c;
    }
    CF_ASSIGN_OR_RETURN(auto strings, t.LoadWhole(values));
    CF_ASSIGN_OR_RETURN(auto mask, t.LoadWhole(node + "/mask"));
    if (mask->info.kind != ColumnKind::kBool || mask->length != strings->length) {
      return Status::Invalid(where + "/mask: expected a bool array as long as values");
    }
    auto whole = std::make_shared<Column>(*strings);
    whole->info = c.info;
    whole->mask = mask->values;
    c.whole = std::move(whole);
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

Result<DataFrameLayout> ReadDataFrameLayout(const ElementTree& t, const std::string& element) {
  const std::string where = t.Where(element);
  CF_ASSIGN_OR_RETURN(Kind kind, t.KindOf(element));
  if (kind == Kind::kMissing) return Status::Invalid(where + ": missing dataframe");
  if (kind != Kind::kGroup) {
    return Status::Invalid(where + ": a dataframe must be a group (anndata >= 0.7) or a "
                           "compound dataset (anndata < 0.7, h5ad only)");
  }
  CF_ASSIGN_OR_RETURN(const std::string enc, EncodingOf(t, element));
  if (enc != "dataframe") {
    return Status::Unsupported(where + ": encoding-type '" + (enc.empty() ? "(none)" : enc) +
                               "', expected 'dataframe'");
  }
  DataFrameLayout df;
  df.element = element;
  CF_ASSIGN_OR_RETURN(auto index_name, t.StringAttr(element, "_index"));
  if (!index_name) return Status::Invalid(where + " attribute '_index' is missing");
  CF_ASSIGN_OR_RETURN(const std::string index, StringsArray(t, element + "/" + *index_name));
  if (t.StringsByRow()) {
    df.index_dataset = index;
    CF_ASSIGN_OR_RETURN(df.n_rows, t.Length(index));
  } else {
    CF_ASSIGN_OR_RETURN(auto values, t.LoadWhole(index));
    df.index_values = std::make_shared<const std::vector<std::string>>(values->strings);
    df.n_rows = values->length;
  }
  CF_ASSIGN_OR_RETURN(auto order, t.StringListAttr(element, "column-order"));
  for (const std::string& name : order.value_or(std::vector<std::string>{})) {
    CF_ASSIGN_OR_RETURN(auto col, ReadColumn(t, element + "/" + name, name));
    int64_t length = 0;
    if (col.whole) {
      length = col.whole->length;
    } else if (col.values) {
      length = col.values->length();
    } else {
      CF_ASSIGN_OR_RETURN(length, t.Length(col.strings));
    }
    if (col.mask && col.mask->length() != length) {
      return Status::Invalid(t.Where(col.node) + "/mask: has " +
                             std::to_string(col.mask->length()) + " entries, values have " +
                             std::to_string(length));
    }
    if (length != df.n_rows) {
      return Status::Invalid(t.Where(col.node) + ": has " + std::to_string(length) +
                             " rows, the " + element + " index has " + std::to_string(df.n_rows));
    }
    df.columns.push_back(std::move(col));
  }
  return df;
}

}  // namespace cellfeed::anndata
