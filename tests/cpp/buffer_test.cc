// Buffer<T>: large buffers are backed by transparent huge pages where the kernel offers
// them on request (checked in /proc/self/smaps), small ones come from operator new.
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include "cellfeed/buffer.h"

using cellfeed::Buffer;

namespace {

std::string ThpMode() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  std::getline(f, line);
  const auto open = line.find('['), close = line.find(']');
  return open == std::string::npos ? "" : line.substr(open + 1, close - open - 1);
}

// AnonHugePages (kB) of the mapping that holds `p`, from /proc/self/smaps.
long HugeKbAt(const void* p) {
  const auto addr = reinterpret_cast<uintptr_t>(p);
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> lo >> dash >> hi && dash == '-') {
      inside = lo <= addr && addr < hi;
      continue;
    }
    if (inside && line.rfind("AnonHugePages:", 0) == 0) return std::stol(line.substr(14));
  }
  return -1;
}

}  // namespace

TEST(Buffer, LargeBuffersUseHugePages) {
  const std::string mode = ThpMode();
  if (mode != "always" && mode != "madvise") GTEST_SKIP() << "transparent huge pages: " << mode;
  Buffer<float> big(size_t{8} << 20);  // 32 MiB
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<float>(i);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(big.data()) % (size_t{2} << 20), 0u);
  EXPECT_GE(HugeKbAt(big.data()), 2048);
  EXPECT_EQ(big[12345], 12345.0f);
}

TEST(Buffer, GrowsAndKeepsValuesAcrossTheHugePageThreshold) {
  Buffer<int32_t> b(10);
  for (int i = 0; i < 10; ++i) b[i] = i;
  b.resize(size_t{3} << 20);  // 12 MiB: reallocated into huge-page memory
  for (int i = 0; i < 10; ++i) EXPECT_EQ(b[i], i);
  b.resize(5);
  b.shrink_to_fit();  // back to operator new
  for (int i = 0; i < 5; ++i) EXPECT_EQ(b[i], i);
}

TEST(Buffer, ResizeForOverwriteLeavesHeadroomAndKeepsItsMemory) {
  Buffer<float> b;
  cellfeed::ResizeForOverwrite(b, 800);
  EXPECT_EQ(b.size(), 800u);
  EXPECT_EQ(b.capacity(), 900u);  // 1/8 headroom
  const float* at = b.data();
  for (size_t n : {size_t{10}, size_t{900}, size_t{0}, size_t{850}}) {
    cellfeed::ResizeForOverwrite(b, n);
    EXPECT_EQ(b.size(), n);
    EXPECT_EQ(b.data(), at) << "reallocated for " << n << " within capacity 900";
  }
  cellfeed::ResizeForOverwrite(b, 901);
  EXPECT_EQ(b.size(), 901u);
  EXPECT_GE(b.capacity(), 901u + 901u / 8);
}
