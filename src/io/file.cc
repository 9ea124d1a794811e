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

Result<FileIdentity> FileIdentity::Of(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return Status::IOError(path + ": cannot stat: " + std::strerror(errno));
  FileIdentity id;
  id.size = static_cast<uint64_t>(st.st_size);
  id.device = static_cast<uint64_t>(st.st_dev);
  id.inode = static_cast<uint64_t>(st.st_ino);
  id.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  return id;
}

Status FileIdentity::CheckUnchanged(int fd, const std::string& path) const {
  CF_ASSIGN_OR_RETURN(FileIdentity now, Of(fd, path));
  if (now.size != size || now.mtime_ns != mtime_ns) {
    return Status::IOError(path + ": file changed since it was opened (size " +
                           std::to_string(size) + " -> " + std::to_string(now.size) +
                           " bytes, or modified); reopen it");
  }
  return Status::OK();
}

Result<std::shared_ptr<RandomAccessFile>> RandomAccessFile::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError(path + ": cannot open: " + std::strerror(errno));
  auto id = FileIdentity::Of(fd, path);
  if (!id.ok()) {
    ::close(fd);
    return id.status();
  }
  return std::shared_ptr<RandomAccessFile>(new RandomAccessFile(path, fd, id.value()));
}

RandomAccessFile::~RandomAccessFile() { ::close(fd_); }

void RandomAccessFile::WillNeed(uint64_t offset, uint64_t size) const {
  // Advice only: an error here changes nothing the reads will report.
  (void)::posix_fadvise(fd_, static_cast<off_t>(offset), static_cast<off_t>(size),
                        POSIX_FADV_WILLNEED);
}

bool RandomAccessFile::IsCached(uint64_t offset) const {
  char byte;
  struct iovec one = {&byte, 1};
  for (;;) {
    const ssize_t n = ::preadv2(fd_, &one, 1, static_cast<off_t>(offset), RWF_NOWAIT);
    if (n >= 0) return true;
    if (errno != EINTR) return errno != EAGAIN;
  }
}

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
