// The gather's vocabulary order against a sort-and-merge written here: random ids with
// duplicates (summed) over vocabularies around a word's size, singles kept bit for bit
// (-0.0 among them), and the scratch reused across cells of different sizes.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>

#include "transform/vocab_order.h"

namespace cellfeed::transform {
namespace {

TEST(VocabOrder, EqualsSortAndMergeInFileOrder) {
  std::mt19937_64 rng(11);
  VocabOrder order;
  for (int64_t V : {1, 63, 64, 65, 19264}) {
    for (size_t n : {0, 1, 2, 50, 1500, 5000}) {
      std::vector<int32_t> idx(n);
      std::vector<double> x(n);
      for (size_t k = 0; k < n; ++k) {
        idx[k] = static_cast<int32_t>(rng() % static_cast<uint64_t>(V));
        x[k] = k % 7 == 3 ? -0.0 : std::uniform_real_distribution<double>(0, 9)(rng);
      }
      std::map<int32_t, std::pair<double, int>> want;  // id -> (file-order sum, count)
      for (size_t k = 0; k < n; ++k) {
        auto [it, fresh] = want.try_emplace(idx[k], x[k], 1);
        if (!fresh) {
          it->second.first += x[k];
          ++it->second.second;
        }
      }
      order.Sort(V, idx, x);
      ASSERT_EQ(idx.size(), want.size()) << "V=" << V << " n=" << n;
      ASSERT_EQ(x.size(), want.size());
      size_t i = 0;
      for (const auto& [g, sum] : want) {
        ASSERT_EQ(idx[i], g) << "V=" << V << " n=" << n << " i=" << i;
        ASSERT_EQ(std::memcmp(&x[i], &sum.first, sizeof(double)), 0)
            << "V=" << V << " n=" << n << " id " << g << ": " << x[i] << " vs " << sum.first;
        ++i;
      }
    }
  }
}

}  // namespace
}  // namespace cellfeed::transform
