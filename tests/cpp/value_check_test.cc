// The value checks against std::isfinite / std::floor on hand-picked edge cases and on
// every position of a vector (the vectorized pass and the search must agree).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "io/value_check.h"

using namespace cellfeed::io;

namespace {

bool RefCount(float x) { return std::isfinite(x) && x >= 0 && std::floor(x) == x; }

const std::vector<float>& EdgeCases() {
  static const std::vector<float> v = {
      0.0f, -0.0f, 1.0f, 2.5f, -1.0f, -2.5f, 0.5f, 1e-40f /* denormal */, 8388607.0f,
      8388607.5f, 8388608.0f, 8388609.0f, 16777217.0f, 1e30f, -1e30f,
      std::numeric_limits<float>::max(), std::numeric_limits<float>::infinity(),
      -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(),
      -std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::min()};
  return v;
}

}  // namespace

TEST(ValueCheck, EdgeCasesMatchTheLibm) {
  for (float x : EdgeCases()) {
    EXPECT_EQ(IsFinite(x), std::isfinite(x)) << x;
    EXPECT_EQ(IsCount(x), RefCount(x)) << x;
  }
}

TEST(ValueCheck, FirstBadValueFindsEveryPosition) {
  for (float bad : EdgeCases()) {
    for (ValueCheck check : {ValueCheck::kFinite, ValueCheck::kCounts}) {
      const bool fails = check == ValueCheck::kFinite ? !std::isfinite(bad) : !RefCount(bad);
      for (size_t n : {size_t{1}, size_t{7}, size_t{64}, size_t{1001}}) {
        for (size_t at : {size_t{0}, n / 2, n - 1}) {
          std::vector<float> v(n, 3.0f);
          v[at] = bad;
          EXPECT_EQ(FirstBadValue(v.data(), n, check), fails ? static_cast<int64_t>(at) : -1)
              << bad << " at " << at << " of " << n << " (" << ValueCheckName(check) << ")";
        }
      }
    }
  }
  std::vector<float> nan(5, std::nanf(""));
  EXPECT_EQ(FirstBadValue(nan.data(), 5, ValueCheck::kNone), -1);
  EXPECT_EQ(FirstBadValue(nan.data(), 0, ValueCheck::kFinite), -1);
}

namespace {

// The plain definition, in 128-bit-free arithmetic: x as a signed or unsigned 64-bit value.
template <typename T>
int64_t RefFirstOutside(const std::vector<T>& v, int64_t bound) {
  for (size_t i = 0; i < v.size(); ++i) {
    const bool neg = std::is_signed_v<T> && v[i] < T(0);
    if (neg || static_cast<uint64_t>(v[i]) >= static_cast<uint64_t>(bound)) {
      return static_cast<int64_t>(i);
    }
  }
  return -1;
}

template <typename T>
void CheckRangeAtEveryPosition() {
  using L = std::numeric_limits<T>;
  const std::vector<int64_t> bounds = {1, 2, 100, 127, 128, 129, 255, 256, 32767, 32768, 65536,
                                       62710, int64_t{1} << 31, (int64_t{1} << 31) + 1,
                                       int64_t{1} << 32, L::max() > 0 ? int64_t(L::max() / 2) : 1,
                                       std::numeric_limits<int64_t>::max()};
  const std::vector<T> probes = {T(0), T(1), T(99), T(100), T(126), T(127), L::max(), L::min(),
                                 T(L::max() - 1), T(L::max() / 2), T(L::max() / 2 + 1), T(-1)};
  for (int64_t bound : bounds) {
    for (T bad : probes) {
      for (size_t n : {size_t{1}, size_t{5}, size_t{33}, size_t{300}}) {
        for (size_t at : {size_t{0}, n / 2, n - 1}) {
          std::vector<T> v(n, T(0));
          v[at] = bad;
          EXPECT_EQ(FirstOutsideRange(v.data(), n, bound), RefFirstOutside(v, bound))
              << "type size " << sizeof(T) << (std::is_signed_v<T> ? " signed" : " unsigned")
              << ", value " << static_cast<int64_t>(bad) << " at " << at << " of " << n
              << ", bound " << bound;
        }
      }
    }
  }
  EXPECT_EQ(FirstOutsideRange<T>(nullptr, 0, 10), -1);
}

}  // namespace

TEST(ValueCheck, IndexRangeMatchesThePlainDefinition) {
  CheckRangeAtEveryPosition<int8_t>();
  CheckRangeAtEveryPosition<uint8_t>();
  CheckRangeAtEveryPosition<int16_t>();
  CheckRangeAtEveryPosition<uint16_t>();
  CheckRangeAtEveryPosition<int32_t>();
  CheckRangeAtEveryPosition<uint32_t>();
  CheckRangeAtEveryPosition<int64_t>();
  CheckRangeAtEveryPosition<uint64_t>();
}
