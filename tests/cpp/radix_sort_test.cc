// The rank tokens' radix sort against std::stable_sort (ids in input order break ties), on
// doubles with many ties, both signs, every size around the small-input cutoff and large.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "transform/radix_sort.h"

namespace cellfeed::transform {
namespace {

TEST(RadixSort, EqualsStableSortOfDescendingDoubles) {
  std::mt19937_64 rng(3);
  for (size_t n : {0, 1, 2, 63, 64, 65, 300, 4096, 20000}) {
    for (int kind = 0; kind < 3; ++kind) {
      std::vector<double> v(n);
      for (double& x : v) {
        if (kind == 0) x = std::uniform_real_distribution<double>(1e-3, 1e3)(rng);
        if (kind == 1) x = static_cast<double>(rng() % 7) / 3.0;        // heavy ties
        if (kind == 2) x = std::normal_distribution<double>(0, 1e-200)(rng) * (rng() % 2 ? 1 : 1e300);
      }
      std::vector<KeyedId> a(n), tmp;
      for (size_t i = 0; i < n; ++i) a[i] = {DescendingKey(v[i]), static_cast<int32_t>(i)};
      RadixSortByKey(a, tmp);
      std::vector<int32_t> want(n);
      for (size_t i = 0; i < n; ++i) want[i] = static_cast<int32_t>(i);
      std::stable_sort(want.begin(), want.end(), [&](int32_t x, int32_t y) { return v[x] > v[y]; });
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(a[i].id, want[i]) << "n=" << n << " kind=" << kind << " i=" << i;
    }
  }
}

TEST(RadixSort, KeysOrderDoublesDescending) {
  const double v[] = {1e300, 2.5, 1.0, 1e-300, 0.0, -1e-300, -1.0, -2.5, -1e300};
  for (size_t i = 0; i + 1 < std::size(v); ++i) EXPECT_LT(DescendingKey(v[i]), DescendingKey(v[i + 1])) << i;
}

}  // namespace
}  // namespace cellfeed::transform
