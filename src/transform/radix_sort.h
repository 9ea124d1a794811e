// Stable sorts of (64-bit key, 32-bit id) pairs by key, for rank tokens: ranking a cell's
// ~400-4,000 genes with std::sort was ~20% of Geneformer's preset, its compares
// mispredicting on random doubles. A bucket pass by key range followed by one insertion
// sort, or where keys pile up, an LSD radix sort by bytes (a digit every key shares
// costs no pass). Stable: pairs with equal keys keep their input order.
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

// Byte-digit LSD radix sort of `a` by key, stably; `tmp` is scratch (resized).
inline void RadixSortByDigits(std::vector<KeyedId>& a, std::vector<KeyedId>& tmp) {
  const size_t n = a.size();
  if (n == 0) return;
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

// One stable counting pass into about 4n buckets of equal key range, then one insertion
// sort over the whole array, which is then nearly sorted: a cell's rank keys (doubles'
// bits: exponent, then mantissa) spread over their range smoothly, so most buckets hold
// one key or none and most keys move not at all. Two passes instead of eight byte passes
// (the LSD sort was 24% of Geneformer's preset). The insertion sort alone decides the
// order, so the result is right whatever the buckets; they only bound its cost. False,
// with `a` untouched, when some bucket would hold too many keys (many equal keys).
inline bool BucketSortByKey(std::vector<KeyedId>& a, std::vector<KeyedId>& tmp,
                            std::vector<uint32_t>& count) {
  constexpr uint32_t kMaxBucket = 32;
  const size_t n = a.size();
  uint64_t lo = a[0].key, hi = a[0].key;
  for (const KeyedId& p : a) {
    lo = std::min(lo, p.key);
    hi = std::max(hi, p.key);
  }
  // shift: (hi - lo) >> shift < 4n, so there are at most 4n buckets.
  const int range_bits = std::bit_width(hi - lo);
  const int n_bits = std::bit_width(n) + 1;
  const int shift = std::max(0, range_bits - n_bits);
  const size_t buckets = static_cast<size_t>((hi - lo) >> shift) + 1;
  count.assign(buckets + 1, 0);
  for (const KeyedId& p : a) ++count[((p.key - lo) >> shift) + 1];
  // The running sum in a register: `count[b] += count[b - 1]` reloaded the store just made,
  // a store-to-load chain per bucket (a fifth of this sort's time).
  uint32_t sum = 0, most = 0;
  for (size_t b = 1; b <= buckets; ++b) {
    const uint32_t k = count[b];
    most = std::max(most, k);
    sum += k;
    count[b] = sum;
  }
  if (most > kMaxBucket) return false;
  tmp.resize(n);
  for (const KeyedId& p : a) tmp[count[(p.key - lo) >> shift]++] = p;  // stable
  for (size_t i = 1; i < n; ++i) {  // moves only past greater keys: stable
    if (!(tmp[i - 1].key > tmp[i].key)) continue;
    const KeyedId v = tmp[i];
    size_t j = i;
    do {
      tmp[j] = tmp[j - 1];
      --j;
    } while (j > 0 && tmp[j - 1].key > v.key);
    tmp[j] = v;
  }
  a.swap(tmp);
  return true;
}

// Sorts `a` by key, stably; `tmp` and `count` are scratch (resized).
inline void RadixSortByKey(std::vector<KeyedId>& a, std::vector<KeyedId>& tmp,
                           std::vector<uint32_t>& count) {
  const size_t n = a.size();
  if (n < 64) {  // insertion sort's territory: no histograms to clear
    std::stable_sort(a.begin(), a.end(), [](const KeyedId& x, const KeyedId& y) { return x.key < y.key; });
    return;
  }
  if (BucketSortByKey(a, tmp, count)) return;
  RadixSortByDigits(a, tmp);
}

}  // namespace cellfeed::transform
