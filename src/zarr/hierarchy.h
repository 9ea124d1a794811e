// A zarr store's tree of groups and arrays: the zarr version, consolidated metadata when
// present (v2 .zmetadata, v3's consolidated_metadata in the root zarr.json), and each
// node's metadata read from it or, for nodes it lacks, from the store.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "zarr/metadata.h"
#include "zarr/store.h"

namespace cellfeed::zarr {

class Hierarchy {
 public:
  static Result<std::unique_ptr<Hierarchy>> Open(const std::string& path);

  Store& store() const { return *store_; }
  const std::string& path() const { return store_->path(); }
  int zarr_format() const { return format_; }
  bool consolidated() const { return !consolidated_.empty(); }
  std::string Where(const std::string& node) const { return zarr::Where(path(), node); }
  // The node at `node` ("" = the root; "obs/cell_type"), kMissing when absent.
  Result<Node> Get(const std::string& node) const;
  // Names of the children of a group (for messages: the layers there are).
  std::vector<std::string> Children(const std::string& node) const;

 private:
  Result<std::optional<Json>> ReadJson(const std::string& key) const;
  std::unique_ptr<Store> store_;
  int format_ = 2;
  std::map<std::string, Json> consolidated_;  // v2: by key ("X/.zarray"); v3: by node path
};

// Python's json writes NaN / Infinity / -Infinity bare (not JSON): read as null.
std::string SanitizeJson(const std::string& text);

}  // namespace cellfeed::zarr
