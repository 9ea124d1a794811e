// A read-only shared mapping of a whole file, read by guarded copies.
//
// Why: on a warm file a preadv costs about 1 us before its first byte (the page-cache
// lookup on every call); a copy out of a mapping whose page tables are filled costs a
// few tens of ns plus a memcpy about twice as fast (bench/native/mapped_reads.c). Reads
// of filtered corpora are many short runs, so that fixed cost is most of what they pay
// over unfiltered reads.
//
// A file truncated after it was mapped raises SIGBUS on its missing pages. A guarded copy
// turns that into a false return (the caller's IOError) instead of a crash: a process-wide
// SIGBUS handler, installed once, jumps back out of the copy of the thread that faulted,
// and hands every other SIGBUS to the handler that was there before.
//
// Policy (read once from CELLFEED_MAPPED_READS): unset, files of at least
// kMapMinBytes are mapped; "0" maps none (every read is a pread); "all" maps every
// non-empty file (tests). mmap failing (address-space limits) falls back to pread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace cellfeed::io {

// Small files are read with pread: mapping and unmapping cost more than their reads save.
inline constexpr uint64_t kMapMinBytes = 4u << 20;

class MappedFile {
 public:
  // The mapping of `size` bytes of fd, or null where the policy or mmap says no.
  static std::unique_ptr<MappedFile> Map(int fd, uint64_t size);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  uint64_t size() const { return size_; }
  // Copies n bytes at offset (offset + n <= size()). False when a page of them is gone
  // from the file (SIGBUS); `out` may then hold part of them.
  bool Copy(uint64_t offset, void* out, size_t n) const;

 private:
  MappedFile(const uint8_t* base, uint64_t size) : base_(base), size_(size) {}
  const uint8_t* base_;
  uint64_t size_;
};

}  // namespace cellfeed::io
