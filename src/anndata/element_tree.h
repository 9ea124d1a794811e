// What the AnnData layout logic asks of a store, whatever its format: nodes, attributes and
// arrays by path. An HDF5 file (h5_element_tree.h) and a zarr store (zarr/element_tree.h)
// answer it, so one piece of code decides how every anndata version lays out a dataframe
// or an obsm entry, and a layout learned for one format is learned for both.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cellfeed/dataframe.h"
#include "cellfeed/status.h"
#include "io/hdf5/dataset_layout.h"

namespace cellfeed::anndata {

class ElementTree {
 public:
  enum class Kind { kMissing, kGroup, kArray, kOther };
  virtual ~ElementTree() = default;

  // "<store>: <node>", for messages.
  virtual std::string Where(const std::string& node) const = 0;
  virtual Result<Kind> KindOf(const std::string& node) const = 0;
  // Names of the members of a group, sorted.
  virtual Result<std::vector<std::string>> Children(const std::string& group) const = 0;
  // Attributes: absent -> nullopt; present with another type -> Invalid.
  virtual Result<std::optional<std::string>> StringAttr(const std::string& node,
                                                        const std::string& key) const = 0;
  virtual Result<std::optional<std::vector<std::string>>> StringListAttr(
      const std::string& node, const std::string& key) const = 0;
  virtual Result<std::optional<bool>> BoolAttr(const std::string& node,
                                               const std::string& key) const = 0;
  virtual Result<std::optional<std::vector<int64_t>>> IntListAttr(
      const std::string& node, const std::string& key) const = 0;
  // The node an anndata 0.7 `categories` attribute of `node` points at (HDF5: an object
  // reference; zarr: a path relative to the node's group); nullopt without the attribute.
  virtual Result<std::optional<std::string>> CategoriesTarget(const std::string& node) const = 0;
  // Whether the array at `node` holds strings.
  virtual Result<bool> IsStrings(const std::string& node) const = 0;
  // A numeric array's dtype, shape and chunk table (read later by pread).
  virtual Result<io::DatasetLayout> Describe(const std::string& node) const = 0;
  // Extent of dim 0 of any array.
  virtual Result<int64_t> Length(const std::string& node) const = 0;
  // A small 1-D array loaded whole (strings, numbers or bools): categories, and strings of
  // stores that do not read strings by row.
  virtual Result<std::shared_ptr<const Column>> LoadWhole(const std::string& node) const = 0;
  // Whether string arrays are read by row after open (HDF5, through libhdf5) rather than
  // loaded whole at open (zarr: vlen-utf8 chunks decode only whole).
  virtual bool StringsByRow() const = 0;
};

}  // namespace cellfeed::anndata
