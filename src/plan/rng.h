// Small deterministic random number generators for the epoch plan.
//
// Everything here is fully specified integer arithmetic, so the plan is bit-identical on
// every platform and standard library (std::shuffle / std::uniform_int_distribution are
// deliberately not used: their output is implementation-defined).
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace cellfeed::plan_internal {

inline constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;

// The splitmix64 output function: a bijective 64-bit mixer with good avalanche.
inline constexpr uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Combines a running hash with one more value. For a fixed `h` it is a bijection of `v`,
// so distinct values never collide within one stream.
inline constexpr uint64_t MixCombine(uint64_t h, uint64_t v) {
  return Mix64(Mix64(h + kGolden) ^ v);
}

// Domain tags keep the different uses of (seed, epoch) independent.
inline constexpr uint64_t kTagBlockOrder = 0x426C6F636B4F7264ULL;   // "BlockOrd"
inline constexpr uint64_t kTagFetchShuffle = 0x4665746368536866ULL;  // "FetchShf"
inline constexpr uint64_t kTagTailOrder = 0x5461696C4F726465ULL;     // "TailOrde"
inline constexpr uint64_t kTagResumedPass = 0x526573756D656450ULL;   // "ResumedP"

// splitmix64 (Steele, Lea, Flood 2014): used to seed xoshiro and derive keys.
class SplitMix64 {
 public:
  explicit constexpr SplitMix64(uint64_t seed) : state_(seed) {}
  constexpr uint64_t Next() {
    state_ += kGolden;
    return Mix64(state_);
  }

 private:
  uint64_t state_;
};

// xoshiro256** 1.0 (Blackman, Vigna 2018).
class Xoshiro256 {
 public:
  explicit Xoshiro256(uint64_t seed) {
    SplitMix64 sm(seed);
    for (auto& w : s_) w = sm.Next();  // never all zero: splitmix64 is a bijection per step
  }

  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

  // Uniform integer in [0, bound), bound >= 1, without modulo bias: draws below
  // 2^64 mod bound are rejected (at most one retry expected for any bound).
  uint64_t Below(uint64_t bound) {
    const uint64_t threshold = (0 - bound) % bound;  // == 2^64 mod bound
    for (;;) {
      const uint64_t r = Next();
      if (r >= threshold) return r % bound;
    }
  }

 private:
  static constexpr uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

// In-place Fisher-Yates (Durstenfeld) shuffle driven by `rng`.
template <typename T>
void FisherYates(std::vector<T>& v, Xoshiro256& rng) {
  for (std::size_t i = v.size(); i > 1; --i) {
    const std::size_t j = static_cast<std::size_t>(rng.Below(static_cast<uint64_t>(i)));
    std::swap(v[i - 1], v[j]);
  }
}

}  // namespace cellfeed::plan_internal
