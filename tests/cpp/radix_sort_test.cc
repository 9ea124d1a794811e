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
      std::vector<uint32_t> count;
      for (size_t i = 0; i < n; ++i) a[i] = {DescendingKey(v[i]), static_cast<int32_t>(i)};
      RadixSortByKey(a, tmp, count);
      std::vector<int32_t> want(n);
      for (size_t i = 0; i < n; ++i) want[i] = static_cast<int32_t>(i);
      std::stable_sort(want.begin(), want.end(), [&](int32_t x, int32_t y) { return v[x] > v[y]; });
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(a[i].id, want[i]) << "n=" << n << " kind=" << kind << " i=" << i;
    }
  }
}

// Each of the two sorts on its own: the bucket pass on keys like a cell's (counts over
// log-normal medians, with ties between genes of equal count and median) and its refusal
// where keys pile up; the byte-digit sort on every kind.
TEST(RadixSort, BothSortsEqualStableSort) {
  std::mt19937_64 rng(5);
  for (size_t n : {64, 65, 500, 1500, 4094, 20000}) {
    for (int kind = 0; kind < 3; ++kind) {
      std::vector<double> v(n);
      std::lognormal_distribution<double> median(0.0, 0.7);
      std::vector<double> medians(64);
      for (double& m : medians) m = median(rng);
      for (double& x : v) {
        const double count = static_cast<double>(1 + rng() % (kind == 2 ? 2 : 12));
        if (kind == 0) x = count / 3517.0 * 10000.0 / median(rng);
        if (kind == 1) x = count / 3517.0 * 10000.0 / medians[rng() % medians.size()];  // ties
        if (kind == 2) x = count;  // two values: buckets overflow
      }
      std::vector<int32_t> want(n);
      for (size_t i = 0; i < n; ++i) want[i] = static_cast<int32_t>(i);
      std::stable_sort(want.begin(), want.end(), [&](int32_t x, int32_t y) { return v[x] > v[y]; });
      std::vector<KeyedId> a(n), b, tmp;
      std::vector<uint32_t> count;
      for (size_t i = 0; i < n; ++i) a[i] = {DescendingKey(v[i]), static_cast<int32_t>(i)};
      b = a;
      RadixSortByDigits(b, tmp);
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(b[i].id, want[i]) << "digits n=" << n << " kind=" << kind;
      b = a;
      const bool took = BucketSortByKey(b, tmp, count);
      if (kind == 0) EXPECT_TRUE(took) << "cell-like keys, n=" << n;
      if (kind == 2 && n >= 500) EXPECT_FALSE(took) << "two distinct keys, n=" << n;
      if (took) {
        for (size_t i = 0; i < n; ++i) ASSERT_EQ(b[i].id, want[i]) << "buckets n=" << n << " kind=" << kind;
      } else {
        for (size_t i = 0; i < n; ++i) ASSERT_EQ(b[i].id, a[i].id) << "a refused sort changed its input";
      }
    }
  }
}

TEST(RadixSort, KeysOrderDoublesDescending) {
  const double v[] = {1e300, 2.5, 1.0, 1e-300, 0.0, -1e-300, -1.0, -2.5, -1e300};
  for (size_t i = 0; i + 1 < std::size(v); ++i) EXPECT_LT(DescendingKey(v[i]), DescendingKey(v[i + 1])) << i;
}

}  // namespace
}  // namespace cellfeed::transform
