// A stable LSD radix sort of (64-bit key, 32-bit id) pairs by key, for rank tokens: ranking
// a cell's ~400-4,000 genes with std::sort was ~20% of Geneformer's preset, its compares
// mispredicting on random doubles. Byte digits; a digit every key shares costs no pass.
// Stable: pairs with equal keys keep their input order.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <vector>

namespace cellfeed::transform {

struct KeyedId {
  uint64_t key;
  int32_t id;
};

// Keys whose unsigned order is the descending order of the doubles (no NaN expected; -0.0
// and 0.0 differ, a NaN sorts by its bits).
inline uint64_t DescendingKey(double v) {
  const uint64_t u = std::bit_cast<uint64_t>(v);
  const uint64_t ascending = (u >> 63) ? ~u : (u | (uint64_t{1} << 63));
  return ~ascending;
}

// Sorts `a` by key, stably; `tmp` is scratch (resized).
inline void RadixSortByKey(std::vector<KeyedId>& a, std::vector<KeyedId>& tmp) {
  const size_t n = a.size();
  if (n < 64) {  // insertion sort's territory: no histograms to clear
    std::stable_sort(a.begin(), a.end(), [](const KeyedId& x, const KeyedId& y) { return x.key < y.key; });
    return;
  }
  std::array<std::array<uint32_t, 256>, 8> count{};
  for (const KeyedId& p : a)
    for (int d = 0; d < 8; ++d) ++count[d][(p.key >> (8 * d)) & 0xff];
  tmp.resize(n);
  KeyedId* src = a.data();
  KeyedId* dst = tmp.data();
  for (int d = 0; d < 8; ++d) {
    std::array<uint32_t, 256>& c = count[d];
    if (c[(src[0].key >> (8 * d)) & 0xff] == n) continue;  // every key has this digit
    uint32_t sum = 0;
    for (uint32_t& x : c) {
      const uint32_t k = x;
      x = sum;
      sum += k;
    }
    for (size_t i = 0; i < n; ++i) dst[c[(src[i].key >> (8 * d)) & 0xff]++] = src[i];
    std::swap(src, dst);
  }
  if (src != a.data()) std::copy(src, src + n, a.data());
}

}  // namespace cellfeed::transform
