// A file read from any thread, with no shared offset and no libhdf5: by guarded copies
// out of a read-only mapping where one is kept (io/mapped_file.h), by pread otherwise;
// or an object named by an s3://, gs:// or http(s):// URL, read by checked range requests
// (storage::RemoteObject, with StorageOptions from the environment; docs/STORAGE.md).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include <sys/uio.h>

#include "cellfeed/status.h"
#include "io/mapped_file.h"

namespace cellfeed::storage {
class RemoteObject;
}

namespace cellfeed::io {

// What a file was when opened (from fstat): a file whose size or modification time
// differ later was truncated, rewritten or replaced in place, and its chunk table and
// metadata are no longer true.
struct FileIdentity {
  uint64_t size = 0, device = 0, inode = 0;
  int64_t mtime_ns = 0;
  static Result<FileIdentity> Of(int fd, const std::string& path);
  Status CheckUnchanged(int fd, const std::string& path) const;
};

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
  // Asks the kernel to start reading these bytes into the page cache (WILLNEED advice;
  // see io/read_ahead.h).
  void WillNeed(uint64_t offset, uint64_t size) const;
  // Whether the page holding `offset` is in the page cache: a one-byte read that may not
  // wait for the device (preadv2 RWF_NOWAIT). True where the kernel cannot tell.
  bool IsCached(uint64_t offset) const;
  // Whether reads are copies out of a mapping: no fixed cost per read, so readers need
  // not merge nearby ranges into one.
  bool mapped() const { return mapped_ != nullptr; }
  const std::string& path() const { return path_; }
  uint64_t size_at_open() const { return identity_.size; }
  uint64_t device() const { return identity_.device; }  // st_dev / st_ino at open
  uint64_t inode() const { return identity_.inode; }
  // IOError if the file changed since it was opened (see FileIdentity).
  // A remote object's reads check its ETag themselves.
  Status CheckUnchanged() const {
    return remote_ ? Status::OK() : identity_.CheckUnchanged(fd_, path_);
  }
  bool remote() const { return remote_ != nullptr; }

 private:
  RandomAccessFile(std::string path, int fd, FileIdentity identity,
                   std::unique_ptr<MappedFile> mapped)
      : path_(std::move(path)), fd_(fd), identity_(identity), mapped_(std::move(mapped)) {}
  // The bytes [offset, offset + size) from the mapping: OK, an IOError (pages gone), or
  // false when the mapping does not cover them (the caller preads).
  bool FromMapping(uint64_t offset, uint64_t size, void* out, Status& st) const;
  std::string path_;
  int fd_;
  FileIdentity identity_;
  std::unique_ptr<MappedFile> mapped_;
  std::shared_ptr<storage::RemoteObject> remote_;  // a URL's object (then fd_ is -1)
};

}  // namespace cellfeed::io
