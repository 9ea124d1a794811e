// The files a store's chunks live in when there are many (a zarr directory store keeps
// one file per chunk or shard). Files are opened on first use, from any thread, and kept
// open up to a limit; past it a file is opened for the one read and closed after.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cellfeed/status.h"
#include "io/file.h"

namespace cellfeed::io {

class FileSet {
 public:
  explicit FileSet(size_t keep_open = 256) : keep_open_(keep_open) {}
  // Adds a path (deduplicated by the caller) and returns its index.
  uint32_t Add(std::string path);
  size_t size() const { return paths_.size(); }
  const std::string& path(uint32_t i) const { return paths_[i]; }
  Result<std::shared_ptr<const RandomAccessFile>> Get(uint32_t i) const;

 private:
  std::vector<std::string> paths_;
  size_t keep_open_;
  mutable std::mutex mu_;
  mutable std::vector<std::shared_ptr<const RandomAccessFile>> open_;
  mutable size_t n_open_ = 0;
};

}  // namespace cellfeed::io
