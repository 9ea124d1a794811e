// Reads out of a file's mapping (io/mapped_file.h): the same bytes as the file holds, and
// a file truncated after it was mapped is an IOError naming it, from any thread and as
// often as it happens; a SIGBUS that no guarded copy caused still ends the process.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "io/file.h"

using cellfeed::Status;
using namespace cellfeed::io;

#if defined(__has_feature)
#define CF_HAS_FEATURE(x) __has_feature(x)
#else
#define CF_HAS_FEATURE(x) 0
#endif
#if defined(__SANITIZE_THREAD__) || CF_HAS_FEATURE(thread_sanitizer)
// TSan's runtime ends the process on a SIGBUS inside its memcpy interceptor instead of
// running the program's handler (seen with gcc 12's libtsan), so these faults are not
// tried under it; ASan's build runs them.
#define CF_SKIP_UNDER_TSAN() GTEST_SKIP() << "TSan does not hand SIGBUS in memcpy to the program"
#else
#define CF_SKIP_UNDER_TSAN() (void)0
#endif

namespace {

constexpr uint64_t kBytes = 8u << 20;  // above kMapMinBytes: mapped by default

std::string WriteFile(const std::string& name, std::vector<uint8_t>& bytes) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("cellfeed_map_" + name + ".bin")).string();
  bytes.resize(kBytes);
  uint32_t s = 12345;
  for (auto& b : bytes) {
    s = s * 1103515245u + 12345u;
    b = static_cast<uint8_t>(s >> 24);
  }
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return path;
}

}  // namespace

TEST(MappedFile, ReadsTheFilesBytes) {
  ASSERT_GE(kBytes, kMapMinBytes);
  std::vector<uint8_t> want;
  const std::string path = WriteFile("same", want);
  auto f = RandomAccessFile::Open(path).value();
  ASSERT_TRUE(f->mapped());
  for (uint64_t off : {uint64_t{0}, uint64_t{1}, uint64_t{4095}, uint64_t{5000000}, kBytes - 3000}) {
    std::vector<uint8_t> got(3000);
    ASSERT_TRUE(f->ReadAt(off, got.size(), got.data()).ok());
    EXPECT_TRUE(std::equal(got.begin(), got.end(), want.begin() + static_cast<int64_t>(off))) << off;
  }
  // A scatter read: consecutive bytes into three buffers.
  std::vector<uint8_t> a(10), b(7000), c(1);
  std::vector<struct iovec> v = {{a.data(), a.size()}, {b.data(), b.size()}, {c.data(), c.size()}};
  ASSERT_TRUE(f->ReadAtV(777, v).ok());
  std::vector<uint8_t> joined(a);
  joined.insert(joined.end(), b.begin(), b.end());
  joined.insert(joined.end(), c.begin(), c.end());
  EXPECT_TRUE(std::equal(joined.begin(), joined.end(), want.begin() + 777));
  // Past the end: the pread path's error, naming the file.
  uint8_t one[16];
  Status st = f->ReadAt(kBytes - 8, sizeof one, one);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find(path), std::string::npos) << st.message();
  std::filesystem::remove(path);
}

TEST(MappedFile, TruncatedAfterOpenIsAnErrorNotACrash) {
  CF_SKIP_UNDER_TSAN();
  std::vector<uint8_t> want;
  const std::string path = WriteFile("cut", want);
  auto f = RandomAccessFile::Open(path).value();
  ASSERT_TRUE(f->mapped());
  std::filesystem::resize_file(path, 1u << 20);
  std::vector<uint8_t> got(4096);
  for (int i = 0; i < 3; ++i) {  // the handler backs out every time, not only once
    Status st = f->ReadAt(6u << 20, got.size(), got.data());
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.code(), cellfeed::StatusCode::kIOError);
    EXPECT_NE(st.message().find(path), std::string::npos) << st.message();
    EXPECT_NE(st.message().find("truncated"), std::string::npos) << st.message();
  }
  // What the file still has reads as before.
  ASSERT_TRUE(f->ReadAt(100, got.size(), got.data()).ok());
  EXPECT_TRUE(std::equal(got.begin(), got.end(), want.begin() + 100));
  // From several threads at once, each backing out of its own copy.
  std::vector<std::thread> threads;
  std::vector<int> failed(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<uint8_t> buf(8192);
      for (int k = 0; k < 50; ++k) {
        failed[static_cast<size_t>(t)] +=
            !f->ReadAt((2u << 20) + static_cast<uint64_t>(k) * 8192, buf.size(), buf.data()).ok();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int n : failed) EXPECT_EQ(n, 50);
  std::filesystem::remove(path);
}

// Not swallowed: the process ends, by SIGBUS or by the handler that was there before
// (ASan's reports the fault and exits 1).
bool EndedBySigbusOrAPreviousHandler(int status) {
  return (WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS) ||
         (WIFEXITED(status) && WEXITSTATUS(status) != 0);
}

TEST(MappedFileDeathTest, ASigbusOfOtherCodeStillEndsTheProcess) {
  CF_SKIP_UNDER_TSAN();
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  std::vector<uint8_t> want;
  const std::string path = WriteFile("other", want);
  auto f = RandomAccessFile::Open(path).value();  // installs the handler
  ASSERT_TRUE(f->mapped());
  // A fault outside any guarded copy: a mapping of the test's own, read past the file's end.
  EXPECT_EXIT(
      {
        const int fd = ::open(path.c_str(), O_RDONLY);
        auto* p = static_cast<volatile uint8_t*>(::mmap(nullptr, kBytes, PROT_READ, MAP_SHARED, fd, 0));
        std::filesystem::resize_file(path, 4096);
        (void)p[kBytes - 1];
        std::_Exit(0);
      },
      EndedBySigbusOrAPreviousHandler, "");
  // One sent by kill(): not a fault, not swallowed.
  EXPECT_EXIT(
      {
        ::kill(::getpid(), SIGBUS);
        std::_Exit(0);
      },
      EndedBySigbusOrAPreviousHandler, "");
  std::filesystem::remove(path);
}
