// The value checks against std::isfinite / std::floor on hand-picked edge cases and on
// every position of a vector (the vectorized pass and the search must agree).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
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
