// An HDF5 file seen as an ElementTree: metadata through libhdf5 (at open), strings read by
// row later, numeric arrays described by their chunk tables.
#pragma once

#include "anndata/element_tree.h"
#include "io/hdf5/h5_file.h"

namespace cellfeed::h5ad {

class H5ElementTree final : public anndata::ElementTree {
 public:
  explicit H5ElementTree(const io::H5File& file) : f_(file) {}

  std::string Where(const std::string& node) const override { return f_.path() + ": " + node; }
  Result<Kind> KindOf(const std::string& node) const override;
  Result<std::vector<std::string>> Children(const std::string& group) const override {
    return f_.Children(group);
  }
  Result<std::optional<std::string>> StringAttr(const std::string& node,
                                                const std::string& key) const override;
  Result<std::optional<std::vector<std::string>>> StringListAttr(
      const std::string& node, const std::string& key) const override;
  Result<std::optional<bool>> BoolAttr(const std::string& node,
                                       const std::string& key) const override;
  Result<std::optional<std::vector<int64_t>>> IntListAttr(const std::string& node,
                                                          const std::string& key) const override;
  Result<std::optional<std::string>> CategoriesTarget(const std::string& node) const override;
  Result<bool> IsStrings(const std::string& node) const override {
    return f_.IsStringDataset(node);
  }
  Result<io::DatasetLayout> Describe(const std::string& node) const override {
    return f_.Describe(node);
  }
  Result<int64_t> Length(const std::string& node) const override { return f_.Length(node); }
  Result<std::shared_ptr<const Column>> LoadWhole(const std::string& node) const override;
  bool StringsByRow() const override { return true; }

 private:
  const io::H5File& f_;
};

}  // namespace cellfeed::h5ad
