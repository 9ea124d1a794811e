// A zarr store (v2 or v3, a directory or a zip) seen as an ElementTree: metadata from the
// hierarchy, string arrays decoded whole at open, numeric arrays described by their chunk
// keys for pread later.
#pragma once

#include "anndata/element_tree.h"
#include "zarr/hierarchy.h"

namespace cellfeed::zarr {

class ZarrElementTree final : public anndata::ElementTree {
 public:
  explicit ZarrElementTree(const Hierarchy& h) : h_(h) {}

  std::string Where(const std::string& node) const override { return h_.Where(node); }
  Result<Kind> KindOf(const std::string& node) const override;
  Result<std::vector<std::string>> Children(const std::string& group) const override;
  Result<std::optional<std::string>> StringAttr(const std::string& node,
                                                const std::string& key) const override;
  Result<std::optional<std::vector<std::string>>> StringListAttr(
      const std::string& node, const std::string& key) const override;
  Result<std::optional<bool>> BoolAttr(const std::string& node,
                                       const std::string& key) const override;
  Result<std::optional<std::vector<int64_t>>> IntListAttr(const std::string& node,
                                                          const std::string& key) const override;
  Result<std::optional<std::string>> CategoriesTarget(const std::string& node) const override;
  Result<bool> IsStrings(const std::string& node) const override;
  Result<io::DatasetLayout> Describe(const std::string& node) const override;
  Result<int64_t> Length(const std::string& node) const override;
  Result<std::shared_ptr<const Column>> LoadWhole(const std::string& node) const override;
  bool StringsByRow() const override { return false; }

 private:
  Result<ArrayMeta> Meta(const std::string& node) const;
  const Hierarchy& h_;
};

}  // namespace cellfeed::zarr
