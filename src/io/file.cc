#include "io/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "storage/object_url.h"
#include "storage/remote_object.h"

namespace cellfeed::io {

namespace {

// Fault injection for tests (docs/RELIABILITY.md), read once from the environment:
// CELLFEED_INJECT_READ_FAULT=KIND@OFFSET[@PATH_PART] makes every read of a file whose
// path contains PATH_PART (any file when absent) that covers byte OFFSET
//   eio:   fail with EIO;
//   eof:   return 0 (end of file) when it starts at OFFSET, else stop short of it;
//   short: return only the bytes before OFFSET (the retry from OFFSET goes through).
struct InjectedFault {
  enum Kind { kNone, kEio, kEof, kShort } kind = kNone;
  uint64_t offset = 0;
  std::string path_part;
};

const InjectedFault& Fault() {
  static const InjectedFault f = [] {
    InjectedFault f;
    const char* v = std::getenv("CELLFEED_INJECT_READ_FAULT");
    if (v == nullptr) return f;
    const std::string s = v;
    const size_t at = s.find('@');
    if (at == std::string::npos) return f;
    const std::string kind = s.substr(0, at);
    const size_t at2 = s.find('@', at + 1);
    f.offset = std::strtoull(s.substr(at + 1, at2 - at - 1).c_str(), nullptr, 10);
    if (at2 != std::string::npos) f.path_part = s.substr(at2 + 1);
    f.kind = kind == "eio" ? InjectedFault::kEio : kind == "eof" ? InjectedFault::kEof
           : kind == "short" ? InjectedFault::kShort : InjectedFault::kNone;
    return f;
  }();
  return f;
}

// How many of `len` bytes at `pos` a read may return (`len` when no fault applies), or
// -1 with errno set.
int64_t Allowed(const std::string& path, uint64_t pos, uint64_t len) {
  const InjectedFault& f = Fault();
  if (f.kind == InjectedFault::kNone || len == 0) return static_cast<int64_t>(len);
  if (f.offset < pos || f.offset >= pos + len) return static_cast<int64_t>(len);
  if (!f.path_part.empty() && path.find(f.path_part) == std::string::npos) {
    return static_cast<int64_t>(len);
  }
  switch (f.kind) {
    case InjectedFault::kEio:
      errno = EIO;
      return -1;
    case InjectedFault::kEof:
      return static_cast<int64_t>(f.offset - pos);
    case InjectedFault::kShort:
      return f.offset > pos ? static_cast<int64_t>(f.offset - pos) : static_cast<int64_t>(len);
    default:
      return static_cast<int64_t>(len);
  }
}

}  // namespace

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
  if (storage::ObjectUrl::IsUrl(path)) {
    CF_ASSIGN_OR_RETURN(auto object, storage::RemoteObject::Open(path, storage::StorageOptions()));
    FileIdentity id;
    id.size = object->size();
    std::shared_ptr<RandomAccessFile> f(new RandomAccessFile(object->url(), -1, id, nullptr));
    f->remote_ = std::move(object);
    return f;
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError(path + ": cannot open: " + std::strerror(errno));
  auto id = FileIdentity::Of(fd, path);
  if (!id.ok()) {
    ::close(fd);
    return id.status();
  }
  // Injected faults apply to preads: a file under test is then never mapped.
  std::unique_ptr<MappedFile> mapped;
  if (Fault().kind == InjectedFault::kNone) mapped = MappedFile::Map(fd, id.value().size);
  return std::shared_ptr<RandomAccessFile>(
      new RandomAccessFile(path, fd, id.value(), std::move(mapped)));
}

RandomAccessFile::~RandomAccessFile() {
  if (fd_ >= 0) ::close(fd_);
}

void RandomAccessFile::WillNeed(uint64_t offset, uint64_t size) const {
  if (remote_) return;
  // Advice only: an error here changes nothing the reads will report.
  (void)::posix_fadvise(fd_, static_cast<off_t>(offset), static_cast<off_t>(size),
                        POSIX_FADV_WILLNEED);
}

bool RandomAccessFile::IsCached(uint64_t offset) const {
  if (remote_) return false;  // every read waits for the network
  char byte;
  struct iovec one = {&byte, 1};
  for (;;) {
    const ssize_t n = ::preadv2(fd_, &one, 1, static_cast<off_t>(offset), RWF_NOWAIT);
    if (n >= 0) return true;
    if (errno != EINTR) return errno != EAGAIN;
  }
}

bool RandomAccessFile::FromMapping(uint64_t offset, uint64_t size, void* out, Status& st) const {
  if (!mapped_ || offset > mapped_->size() || size > mapped_->size() - offset) return false;
  if (mapped_->Copy(offset, out, static_cast<size_t>(size))) {
    st = Status::OK();
  } else {
    st = Status::IOError(path_ + ": file is truncated or changed: the " + std::to_string(size) +
                         " bytes at offset " + std::to_string(offset) +
                         " are no longer in it (SIGBUS reading its mapping)");
  }
  return true;
}

Status RandomAccessFile::ReadAt(uint64_t offset, uint64_t size, void* out) const {
  if (remote_) return remote_->ReadAt(offset, size, out);
  if (Status st; FromMapping(offset, size, out, st)) return st;
  auto* dst = static_cast<char*>(out);
  uint64_t done = 0;
  while (done < size) {
    const int64_t allowed = Allowed(path_, offset + done, size - done);
    ssize_t n = allowed < 0 ? -1
                            : ::pread(fd_, dst + done, static_cast<size_t>(allowed),
                                      static_cast<off_t>(offset + done));
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
  if (remote_) {  // adjacent ranges: merged into one request by the object
    std::vector<storage::ByteRange> ranges;
    std::vector<void*> outs;
    for (const struct iovec& v : buffers) {
      ranges.push_back({offset, v.iov_len});
      outs.push_back(v.iov_base);
      offset += v.iov_len;
    }
    return remote_->ReadRanges(ranges, outs);
  }
  if (mapped_) {
    uint64_t total = 0;
    for (const struct iovec& v : buffers) total += v.iov_len;
    if (offset <= mapped_->size() && total <= mapped_->size() - offset) {
      for (const struct iovec& v : buffers) {
        Status st;
        FromMapping(offset, v.iov_len, v.iov_base, st);
        if (!st.ok()) return st;
        offset += v.iov_len;
      }
      return Status::OK();
    }
  }
  std::vector<struct iovec> iov(buffers.begin(), buffers.end());
  size_t first = 0;
  uint64_t pos = offset;
  while (first < iov.size()) {
    int count = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
    uint64_t want = 0;
    for (int i = 0; i < count; ++i) want += iov[first + i].iov_len;
    const int64_t allowed = Allowed(path_, pos, want);
    // An injected short read: the same buffers, cut after `allowed` bytes.
    std::vector<struct iovec> cut;
    const struct iovec* vec = iov.data() + first;
    if (allowed >= 0 && static_cast<uint64_t>(allowed) < want) {
      uint64_t left = static_cast<uint64_t>(allowed);
      for (int i = 0; i < count && left > 0; ++i) {
        struct iovec v = iov[first + i];
        v.iov_len = std::min<uint64_t>(v.iov_len, left);
        left -= v.iov_len;
        cut.push_back(v);
      }
      vec = cut.data();
      count = static_cast<int>(cut.size());
    }
    ssize_t n = allowed < 0 ? -1 : count == 0 ? 0 : ::preadv(fd_, vec, count, static_cast<off_t>(pos));
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
