// A zarr store's keys and where their bytes are: a directory (one file per key) or a zip
// file (zarr-python's ZipStore: one member per key). Opening lists what is needed to
// find any key; afterwards chunk bytes are read with pread at the located offset.
// A group inside a zip is addressed as a path below the zip file ("coll.zip/dataset_0"),
// as the same group of a directory store is: the store is then that group's keys.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cellfeed/status.h"
#include "io/file.h"
#include "io/file_set.h"

namespace cellfeed::zarr {

// Where a key's bytes are: `size` bytes at `offset` of file `file` (an index into the
// store's FileSet for directory stores, 0 = the zip itself for zip stores).
struct KeyLocation {
  uint32_t file = 0;
  uint64_t offset = 0, size = 0;
  bool deflated = false;      // a zip member stored with DEFLATE (raw deflate)
  uint64_t decoded_size = 0;  // its size once inflated (zip members), else `size`
};

// For a path below a regular file ("coll.zip/dataset_0", which stat refuses): the file
// and the rest of the path ("dataset_0"); nullopt for any other path.
struct InsideFile {
  std::string file, inner;
};
std::optional<InsideFile> SplitInsideFile(const std::string& path);

class Store {
 public:
  // A directory, a zip file (told by the content: the zip signature), or a group inside a
  // zip file (see SplitInsideFile).
  static Result<std::unique_ptr<Store>> Open(const std::string& path);
  virtual ~Store() = default;

  const std::string& path() const { return path_; }
  virtual bool is_zip() const = 0;
  // Locates a key (directory stores add its file to the FileSet: call at open only).
  virtual Result<std::optional<KeyLocation>> Locate(const std::string& key) = 0;
  // Names directly under `prefix` ("" = the root), keys and sub-folders alike.
  virtual std::vector<std::string> List(const std::string& prefix) const = 0;
  // The whole value of a (small) key, or nullopt when absent.
  virtual Result<std::optional<std::string>> Read(const std::string& key);
  // Bytes at a location (inflated when the zip member is deflated).
  Result<std::vector<uint8_t>> ReadLocation(const KeyLocation& loc) const;

  // The file chunk reads name: the zip, or for directories the root's metadata file.
  const io::RandomAccessFile& main_file() const { return *main_; }
  std::shared_ptr<const io::RandomAccessFile> main_file_ptr() const { return main_; }
  // Directory stores: the files keys were located in (null for zip stores).
  std::shared_ptr<const io::FileSet> files() const { return files_; }

 protected:
  std::string path_;
  std::shared_ptr<const io::RandomAccessFile> main_;
  std::shared_ptr<io::FileSet> files_;
};

}  // namespace cellfeed::zarr
