// StreamCopy (non-temporal stores for dense output rows) against memcpy: every length
// around the 16-byte body, every destination and source misalignment, and that it
// writes nothing outside [dst, dst + n).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "transform/stream_store.h"

namespace cellfeed::transform {
namespace {

TEST(StreamCopy, EqualsMemcpyAtEveryAlignmentAndLength) {
  std::vector<uint8_t> src(400), dst(460), want(460);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i * 37 + 11);
  for (size_t n : {0, 1, 15, 16, 17, 31, 32, 33, 100, 255, 256, 300}) {
    for (size_t d_off = 0; d_off < 17; ++d_off) {
      for (size_t s_off = 0; s_off < 5; ++s_off) {
        std::fill(dst.begin(), dst.end(), uint8_t{0xAB});
        want = dst;
        std::memcpy(want.data() + 20 + d_off, src.data() + s_off, n);
        StreamCopy(dst.data() + 20 + d_off, src.data() + s_off, n);
        ASSERT_EQ(dst, want) << "n=" << n << " dst offset=" << d_off << " src offset=" << s_off;
      }
    }
  }
}

}  // namespace
}  // namespace cellfeed::transform
