#include "zarr/element_tree.h"

#include "io/array_reader.h"
#include "util/thread_pool.h"
#include "zarr/chunk_table.h"

namespace cellfeed::zarr {

Result<anndata::ElementTree::Kind> ZarrElementTree::KindOf(const std::string& node) const {
  CF_ASSIGN_OR_RETURN(Node n, h_.Get(node));
  switch (n.kind) {
    case Node::Kind::kMissing: return Kind::kMissing;
    case Node::Kind::kGroup: return Kind::kGroup;
    case Node::Kind::kArray: return Kind::kArray;
  }
  return Kind::kOther;
}

Result<std::vector<std::string>> ZarrElementTree::Children(const std::string& group) const {
  // The hierarchy lists every name under the group's prefix: keep those that are nodes.
  std::vector<std::string> out;
  for (const std::string& name : h_.Children(group)) {
    CF_ASSIGN_OR_RETURN(Kind k, KindOf(group.empty() ? name : group + "/" + name));
    if (k != Kind::kMissing) out.push_back(name);
  }
  return out;
}

Result<std::optional<std::string>> ZarrElementTree::StringAttr(const std::string& node,
                                                               const std::string& key) const {
  CF_ASSIGN_OR_RETURN(Node n, h_.Get(node));
  return zarr::StringAttr(n, key, Where(node));
}

Result<std::optional<std::vector<std::string>>> ZarrElementTree::StringListAttr(
    const std::string& node, const std::string& key) const {
  CF_ASSIGN_OR_RETURN(Node n, h_.Get(node));
  return zarr::StringListAttr(n, key, Where(node));
}

Result<std::optional<bool>> ZarrElementTree::BoolAttr(const std::string& node,
                                                      const std::string& key) const {
  CF_ASSIGN_OR_RETURN(Node n, h_.Get(node));
  return zarr::BoolAttr(n, key, Where(node));
}

Result<std::optional<std::vector<int64_t>>> ZarrElementTree::IntListAttr(
    const std::string& node, const std::string& key) const {
  CF_ASSIGN_OR_RETURN(Node n, h_.Get(node));
  return zarr::IntListAttr(n, key, Where(node));
}

Result<std::optional<std::string>> ZarrElementTree::CategoriesTarget(
    const std::string& node) const {
  CF_ASSIGN_OR_RETURN(auto ref, StringAttr(node, "categories"));
  if (!ref) return ref;
  // anndata 0.7 writes "__categories/<col>", resolved (as anndata does) in the column's
  // group; a leading '/' does not make it absolute there either.
  const size_t start = ref->find_first_not_of('/');
  if (start == std::string::npos) {
    return Status::Invalid(Where(node) + ": attribute 'categories' must name an array, found '" +
                           *ref + "'");
  }
  const size_t slash = node.rfind('/');
  const std::string group = slash == std::string::npos ? "" : node.substr(0, slash + 1);
  return std::optional<std::string>(group + ref->substr(start));
}

Result<ArrayMeta> ZarrElementTree::Meta(const std::string& node) const {
  CF_ASSIGN_OR_RETURN(Node n, h_.Get(node));
  const std::string where = Where(node);
  if (n.kind == Node::Kind::kMissing) return Status::Invalid(where + ": missing array");
  if (n.kind != Node::Kind::kArray) {
    return Status::Invalid(where + ": expected an array, found a group");
  }
  return ParseArray(n, where);
}

Result<bool> ZarrElementTree::IsStrings(const std::string& node) const {
  CF_ASSIGN_OR_RETURN(ArrayMeta meta, Meta(node));
  return meta.is_string;
}

Result<io::DatasetLayout> ZarrElementTree::Describe(const std::string& node) const {
  CF_ASSIGN_OR_RETURN(ArrayMeta meta, Meta(node));
  if (meta.is_string) {
    return Status::Invalid(Where(node) + ": expected a numeric array, found strings");
  }
  return DescribeArray(h_, node, meta);
}

Result<int64_t> ZarrElementTree::Length(const std::string& node) const {
  CF_ASSIGN_OR_RETURN(ArrayMeta meta, Meta(node));
  if (meta.shape.empty()) return Status::Invalid(Where(node) + ": a scalar, expected an array");
  return meta.shape[0];
}

Result<std::shared_ptr<const Column>> ZarrElementTree::LoadWhole(const std::string& node) const {
  const std::string where = Where(node);
  CF_ASSIGN_OR_RETURN(ArrayMeta meta, Meta(node));
  auto c = std::make_shared<Column>();
  if (meta.is_string) {
    CF_ASSIGN_OR_RETURN(c->strings, ReadStringArray(h_, node, meta));
    c->length = static_cast<int64_t>(c->strings.size());
    c->info.kind = ColumnKind::kString;
    return std::shared_ptr<const Column>(c);
  }
  if (meta.shape.size() != 1) return Status::Invalid(where + ": expected a 1-D array");
  CF_ASSIGN_OR_RETURN(io::DatasetLayout L, DescribeArray(h_, node, meta));
  c->info.dtype = L.dtype;
  c->info.kind = L.dtype == DType::kBool ? ColumnKind::kBool : ColumnKind::kNumeric;
  c->length = L.length();
  c->values.resize(static_cast<size_t>(c->length) * DTypeSize(L.dtype));
  util::ThreadPool here(1);
  io::ArrayRead r{&L, &h_.store().main_file(), {{0, c->length, 0}}, L.dtype, c->values.data()};
  CF_RETURN_IF_ERROR(io::ReadArrays(std::span<io::ArrayRead>(&r, 1), here));
  return std::shared_ptr<const Column>(c);
}

}  // namespace cellfeed::zarr
