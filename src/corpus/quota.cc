// Largest-remainder (Hamilton) rounding, as Levanter's mixtures do per block.
#include "corpus/quota.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace cellfeed::corpus {

std::vector<int64_t> LargestRemainder(int64_t total, const std::vector<double>& mass) {
  std::vector<int64_t> out(mass.size(), 0);
  const double sum = std::accumulate(mass.begin(), mass.end(), 0.0);
  if (total <= 0 || !(sum > 0)) return out;
  std::vector<std::pair<double, size_t>> rest;
  int64_t given = 0;
  for (size_t i = 0; i < mass.size(); ++i) {
    const long double exact = static_cast<long double>(total) * mass[i] / sum;
    out[i] = static_cast<int64_t>(std::floor(exact));
    given += out[i];
    if (mass[i] > 0) rest.emplace_back(static_cast<double>(exact - out[i]), i);
  }
  std::stable_sort(rest.begin(), rest.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t k = 0; given < total && !rest.empty(); k = (k + 1) % rest.size(), ++given) {
    ++out[rest[k].second];
  }
  return out;
}

}  // namespace cellfeed::corpus
