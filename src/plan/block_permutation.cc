#include "plan/block_permutation.h"

#include "plan/rng.h"

namespace cellfeed::plan_internal {

BlockPermutation::BlockPermutation(uint64_t n, uint64_t key) : n_(n) {
  // Bits needed for values up to n-1, at least 2 so that each half has >= 1 bit.
  int bits = 0;
  while (bits < 64 && (uint64_t{1} << bits) < n) ++bits;
  if (bits < 2) bits = 2;
  half_bits_ = (bits + 1) / 2;  // <= 32
  mask_ = (uint64_t{1} << half_bits_) - 1;
  SplitMix64 sm(key);
  for (auto& k : keys_) k = sm.Next();
}

uint64_t BlockPermutation::Round(uint64_t half, int i) const {
  return Mix64(half ^ keys_[i]) & mask_;
}

uint64_t BlockPermutation::Encrypt(uint64_t x) const {
  uint64_t l = (x >> half_bits_) & mask_;
  uint64_t r = x & mask_;
  for (int i = 0; i < kRounds; ++i) {
    const uint64_t next_r = l ^ Round(r, i);
    l = r;
    r = next_r;
  }
  return (l << half_bits_) | r;
}

uint64_t BlockPermutation::Decrypt(uint64_t y) const {
  uint64_t l = (y >> half_bits_) & mask_;
  uint64_t r = y & mask_;
  for (int i = kRounds - 1; i >= 0; --i) {
    const uint64_t prev_l = r ^ Round(l, i);
    r = l;
    l = prev_l;
  }
  return (l << half_bits_) | r;
}

uint64_t BlockPermutation::Forward(uint64_t x) const {
  if (n_ <= 1) return x;
  do {
    x = Encrypt(x);
  } while (x >= n_);
  return x;
}

uint64_t BlockPermutation::Inverse(uint64_t y) const {
  if (n_ <= 1) return y;
  do {
    y = Decrypt(y);
  } while (y >= n_);
  return y;
}

}  // namespace cellfeed::plan_internal
