#include "io/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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
  return std::shared_ptr<RandomAccessFile>(new RandomAccessFile(
      path, fd, static_cast<uint64_t>(st.st_size),
      int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec));
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

}  // namespace cellfeed::io
