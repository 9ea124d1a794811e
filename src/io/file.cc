#include "io/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <climits>
#include <cstring>
#include <vector>

namespace cellfeed::io {

Result<std::shared_ptr<RandomAccessFile>> RandomAccessFile::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError(path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return Status::IOError(path + ": cannot stat: " + std::strerror(e));
  }
  auto f = std::shared_ptr<RandomAccessFile>(new RandomAccessFile(
      path, fd, static_cast<uint64_t>(st.st_size),
      int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec));
  f->device_ = static_cast<uint64_t>(st.st_dev);
  f->inode_ = static_cast<uint64_t>(st.st_ino);
  return f;
}

Status RandomAccessFile::CheckUnchanged() const {
  struct stat st;
  if (::fstat(fd_, &st) != 0) return Status::IOError(path_ + ": cannot stat: " + std::strerror(errno));
  const int64_t mtime = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  if (static_cast<uint64_t>(st.st_size) != size_ || mtime != mtime_ns_) {
    return Status::IOError(path_ + ": file changed since it was opened (size " +
                           std::to_string(size_) + " -> " + std::to_string(st.st_size) +
                           " bytes, or modified); reopen it");
  }
  return Status::OK();
}

RandomAccessFile::~RandomAccessFile() { ::close(fd_); }

Status RandomAccessFile::ReadAt(uint64_t offset, uint64_t size, void* out) const {
  auto* dst = static_cast<char*>(out);
  uint64_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd_, dst + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IOError(path_ + ": read of " + std::to_string(size) + " bytes at offset " +
                             std::to_string(offset) + " failed: " + std::strerror(errno));
    }
    if (n == 0) {
      return Status::IOError(path_ + ": file is truncated or changed: wanted " +
                             std::to_string(size) + " bytes at offset " + std::to_string(offset) +
                             ", file ends at " + std::to_string(offset + done));
    }
    done += static_cast<uint64_t>(n);
  }
  return Status::OK();
}

Status RandomAccessFile::ReadAtV(uint64_t offset, std::span<const struct iovec> buffers) const {
  std::vector<struct iovec> iov(buffers.begin(), buffers.end());
  size_t first = 0;
  uint64_t pos = offset;
  while (first < iov.size()) {
    const int count = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
    ssize_t n = ::preadv(fd_, iov.data() + first, count, static_cast<off_t>(pos));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IOError(path_ + ": read at offset " + std::to_string(pos) +
                             " failed: " + std::strerror(errno));
    }
    if (n == 0) {
      return Status::IOError(path_ + ": file is truncated or changed: no bytes at offset " +
                             std::to_string(pos));
    }
    pos += static_cast<uint64_t>(n);
    // Skip the buffers filled; shorten a partly filled one.
    size_t left = static_cast<size_t>(n);
    while (first < iov.size() && left >= iov[first].iov_len) left -= iov[first++].iov_len;
    if (left > 0) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  return Status::OK();
}

}  // namespace cellfeed::io
