// A seeded pseudo-random permutation of [0, n), evaluated element by element in O(1)
// memory, in both directions.
//
// Construction: a balanced Feistel network over 2h bits (2^(2h) >= n, h >= 1), with
// kRounds rounds whose round function is the splitmix64 mixer of (right half XOR round
// key), truncated to h bits. A Feistel network is a bijection of [0, 2^(2h)) for any round
// function; cycle-walking (re-applying it until the value lands below n) restricts it to a
// bijection of [0, n). Since 2^(2h) < 4n, a walk takes fewer than 4 steps on average.
// Round keys come from splitmix64 seeded with `key`.
#pragma once

#include <cstdint>

namespace cellfeed::plan_internal {

class BlockPermutation {
 public:
  static constexpr int kRounds = 6;

  BlockPermutation(uint64_t n, uint64_t key);

  uint64_t size() const { return n_; }
  // The image of x (x < n).
  uint64_t Forward(uint64_t x) const;
  // The preimage of y (y < n): Forward(Inverse(y)) == y.
  uint64_t Inverse(uint64_t y) const;

 private:
  uint64_t Encrypt(uint64_t x) const;
  uint64_t Decrypt(uint64_t y) const;
  uint64_t Round(uint64_t half, int i) const;

  uint64_t n_ = 0;
  int half_bits_ = 1;
  uint64_t mask_ = 1;
  uint64_t keys_[kRounds] = {};
};

}  // namespace cellfeed::plan_internal
