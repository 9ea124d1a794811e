// Read-ahead against the real page cache: a file is written, synced and evicted with
// posix_fadvise DONTNEED; which of its pages are cached is then asked of mincore(2).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "io/file.h"
#include "io/read_ahead.h"

using namespace cellfeed::io;

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kPages = 2048;  // 8 MiB

std::string WriteFile(const std::string& name) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("cellfeed_ra_" + name + ".bin")).string();
  std::vector<char> bytes(kPage * kPages, 'x');
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

// Which pages of the file are in the page cache, from mincore(2), which starts no I/O
// (a RWF_NOWAIT probe of a missing page may itself start reading it).
std::vector<bool> Resident(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  void* map = ::mmap(nullptr, kPage * kPages, PROT_READ, MAP_SHARED, fd, 0);
  std::vector<unsigned char> pages(kPages);
  ::mincore(map, kPage * kPages, pages.data());
  ::munmap(map, kPage * kPages);
  ::close(fd);
  std::vector<bool> out(kPages);
  for (size_t i = 0; i < kPages; ++i) out[i] = pages[i] & 1;
  return out;
}

// Syncs and drops the file's pages; false where the file system keeps them (tmpfs).
bool Evict(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
  for (bool r : Resident(path)) if (r) return false;
  return true;
}

// Waits up to 10 s for a page to arrive (advice reads asynchronously).
bool BecomesResident(const std::string& path, uint64_t page) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < until) {
    if (Resident(path)[page]) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

// What ReadArrays does with its ranges (there it probes a sample of them).
void AdviseIfCold(const std::vector<ByteRange>& ranges) {
  if (AnyUncached({ranges.front()})) Advise(ranges, 0);
}

}  // namespace

TEST(ReadAhead, ProbeSeesEvictionAndReads) {
  const std::string path = WriteFile("probe");
  if (!Evict(path)) GTEST_SKIP() << "this file system keeps pages cached: " << path;
  auto f = RandomAccessFile::Open(path).value();
  EXPECT_FALSE(f->IsCached(100 * kPage));
  char buf[16];
  ASSERT_TRUE(f->ReadAt(100 * kPage + 10, sizeof buf, buf).ok());
  EXPECT_TRUE(f->IsCached(100 * kPage));
  std::filesystem::remove(path);
}

TEST(ReadAhead, ColdRangesAreReadAheadWithoutBeingRead) {
  const std::string path = WriteFile("cold");
  if (!Evict(path)) GTEST_SKIP() << "this file system keeps pages cached: " << path;
  auto f = RandomAccessFile::Open(path).value();
  // Two ranges far apart; the probe looks at the first only, the second arrives because
  // it was advised.
  AdviseIfCold({{f.get(), 10 * kPage, 12 * kPage}, {f.get(), 1400 * kPage, 1402 * kPage}});
  EXPECT_TRUE(BecomesResident(path, 11));
  EXPECT_TRUE(BecomesResident(path, 1401));
  EXPECT_FALSE(Resident(path)[800]);
  std::filesystem::remove(path);
}

TEST(ReadAhead, WarmRangesAreLeftAlone) {
  // The sampled probes find the pages cached, so nothing is advised: a range beside them
  // that was evicted stays out of the cache.
  const std::string path = WriteFile("warm");
  if (!Evict(path)) GTEST_SKIP() << "this file system keeps pages cached: " << path;
  auto f = RandomAccessFile::Open(path).value();
  char buf[8];
  ASSERT_TRUE(f->ReadAt(0, sizeof buf, buf).ok());
  ASSERT_TRUE(f->IsCached(0));
  // One range, cached at its start (the probe's page) but not at page 1500 (6 MB on,
  // beyond any readahead window of the first read).
  AdviseIfCold({{f.get(), 0, 1501 * kPage}});
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(Resident(path)[1500]);
  std::filesystem::remove(path);
}
