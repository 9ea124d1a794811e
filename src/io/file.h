// A file read with pread from any thread, with no shared offset and no libhdf5.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include <sys/uio.h>

#include "cellfeed/status.h"

namespace cellfeed::io {

class RandomAccessFile {
 public:
  static Result<std::shared_ptr<RandomAccessFile>> Open(const std::string& path);
  ~RandomAccessFile();
  RandomAccessFile(const RandomAccessFile&) = delete;
  RandomAccessFile& operator=(const RandomAccessFile&) = delete;

  // Reads exactly `size` bytes at `offset`; a short read (truncated file) is an IOError.
  Status ReadAt(uint64_t offset, uint64_t size, void* out) const;
  // Reads consecutive bytes at `offset` into the given buffers in turn (one preadv per
  // IOV_MAX buffers): a scatter read with no intermediate copy.
  Status ReadAtV(uint64_t offset, std::span<const struct iovec> buffers) const;
  const std::string& path() const { return path_; }
  uint64_t size_at_open() const { return size_; }
  uint64_t device() const { return device_; }  // st_dev / st_ino at open
  uint64_t inode() const { return inode_; }
  // IOError if the file was truncated, replaced in place or rewritten since it was opened
  // (size or modification time changed): its chunk table would no longer be true.
  Status CheckUnchanged() const;

 private:
  RandomAccessFile(std::string path, int fd, uint64_t size, int64_t mtime_ns)
      : path_(std::move(path)), fd_(fd), size_(size), mtime_ns_(mtime_ns) {}
  std::string path_;
  int fd_;
  uint64_t size_;
  int64_t mtime_ns_;
  uint64_t device_ = 0, inode_ = 0;
};

}  // namespace cellfeed::io
