#include "h5ad/h5_element_tree.h"

namespace cellfeed::h5ad {

Result<anndata::ElementTree::Kind> H5ElementTree::KindOf(const std::string& node) const {
  switch (f_.Kind(node)) {
    case io::NodeKind::kMissing: return Kind::kMissing;
    case io::NodeKind::kGroup: return Kind::kGroup;
    case io::NodeKind::kDataset: return Kind::kArray;
    case io::NodeKind::kOther: break;
  }
  return Kind::kOther;
}

Result<std::optional<std::string>> H5ElementTree::StringAttr(const std::string& node,
                                                             const std::string& key) const {
  if (!f_.HasAttribute(node, key)) return std::optional<std::string>();
  CF_ASSIGN_OR_RETURN(auto v, f_.StringAttribute(node, key));
  return std::optional<std::string>(std::move(v));
}

Result<std::optional<std::vector<std::string>>> H5ElementTree::StringListAttr(
    const std::string& node, const std::string& key) const {
  if (!f_.HasAttribute(node, key)) return std::optional<std::vector<std::string>>();
  CF_ASSIGN_OR_RETURN(auto v, f_.StringListAttribute(node, key));
  return std::optional<std::vector<std::string>>(std::move(v));
}

Result<std::optional<bool>> H5ElementTree::BoolAttr(const std::string& node,
                                                    const std::string& key) const {
  if (!f_.HasAttribute(node, key)) return std::optional<bool>();
  CF_ASSIGN_OR_RETURN(bool v, f_.BoolAttribute(node, key));
  return std::optional<bool>(v);
}

Result<std::optional<std::vector<int64_t>>> H5ElementTree::IntListAttr(
    const std::string& node, const std::string& key) const {
  if (!f_.HasAttribute(node, key)) return std::optional<std::vector<int64_t>>();
  CF_ASSIGN_OR_RETURN(auto v, f_.IntListAttribute(node, key));
  return std::optional<std::vector<int64_t>>(std::move(v));
}

Result<std::optional<std::string>> H5ElementTree::CategoriesTarget(const std::string& node) const {
  if (!f_.HasAttribute(node, "categories")) return std::optional<std::string>();
  CF_ASSIGN_OR_RETURN(auto target, f_.ReferenceAttribute(node, "categories"));
  return std::optional<std::string>(std::move(target));
}

Result<std::shared_ptr<const Column>> H5ElementTree::LoadWhole(const std::string& node) const {
  auto c = std::make_shared<Column>();
  if (f_.IsStringDataset(node)) {
    c->info.kind = ColumnKind::kString;
    CF_ASSIGN_OR_RETURN(c->strings, f_.ReadStrings(node));
    c->length = static_cast<int64_t>(c->strings.size());
    return std::shared_ptr<const Column>(c);
  }
  CF_ASSIGN_OR_RETURN(auto layout, f_.Describe(node));
  if (layout.shape.size() != 1) {
    return Status::Invalid(Where(node) + ": expected a 1-D array");
  }
  c->info.kind = layout.dtype == DType::kBool ? ColumnKind::kBool : ColumnKind::kNumeric;
  c->info.dtype = layout.dtype;
  c->length = layout.length();
  CF_ASSIGN_OR_RETURN(c->values, f_.ReadSmallNumeric(node, layout.dtype));
  return std::shared_ptr<const Column>(c);
}

}  // namespace cellfeed::h5ad
