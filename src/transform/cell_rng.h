// The random draws of the transforms: one counter-based generator per (seed, epoch,
// cell key, purpose), so a cell's draws do not depend on which thread, worker, fetch or
// resume point produces it, and different purposes (steps) never share a stream.
//
// Samplers are written here from their definitions (no std:: distributions, whose output
// is implementation-defined):
// - Uniform(): 53 random bits, in [0, 1); UniformOpen(): in (0, 1].
// - Binomial(n, p): exact inversion (Kachitvichyanukul & Schmeiser's BINV) on p <= 1/2
//   (symmetry otherwise), in pieces of at most 512 trials so (1-p)^m never underflows;
//   expected cost O(n p + 1).
// - Beta(a, b) for integers a, b >= 1: the a-th smallest of a + b - 1 uniforms (order
//   statistics of the uniform distribution), e.g. Beta(2, 2) = median of 3 uniforms.
// - GeometricGap(p): failures before the next success of Bernoulli(p) trials, by
//   inversion; used to visit the successes of a long Bernoulli process directly.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "plan/rng.h"

namespace cellfeed::transform {

// Purposes: one per kind of draw; a step's index in the pipeline is mixed in as well.
inline constexpr uint64_t kPurposeThin = 0x5468696E6E696E67ULL;       // "Thinning"
inline constexpr uint64_t kPurposeRda = 0x5244414461776E73ULL;        // "RDADawns"
inline constexpr uint64_t kPurposeValueMask = 0x56616C4D61736B73ULL;  // "ValMasks"
inline constexpr uint64_t kPurposeTokenMask = 0x546F6B4D61736B73ULL;  // "TokMasks"
inline constexpr uint64_t kPurposeBins = 0x42696E5469657321ULL;       // "BinTies!"
inline constexpr uint64_t kPurposeSample = 0x47656E6553616D70ULL;     // "GeneSamp"
inline constexpr uint64_t kTagTransform = 0x5472616E73666F72ULL;      // "Transfor"

inline uint64_t CellStreamKey(uint64_t seed, int64_t epoch, uint64_t cell_key, uint64_t purpose,
                              uint64_t index = 0) {
  using plan_internal::MixCombine;
  uint64_t h = MixCombine(kTagTransform, seed);
  h = MixCombine(h, static_cast<uint64_t>(epoch));
  h = MixCombine(h, cell_key);
  h = MixCombine(h, purpose);
  return MixCombine(h, index);
}

class CellRng {
 public:
  explicit CellRng(uint64_t key) : g_(key) {}

  uint64_t Bits() { return g_.Next(); }
  double Uniform() { return static_cast<double>(g_.Next() >> 11) * 0x1.0p-53; }
  double UniformOpen() { return static_cast<double>((g_.Next() >> 11) + 1) * 0x1.0p-53; }
  uint64_t Below(uint64_t bound) { return g_.Below(bound); }
  bool Bernoulli(double p) { return Uniform() < p; }
  // Bernoulli(p) in integers, for loops over many positions: with t = BernoulliBound(p),
  // BernoulliBelow(t) is true exactly when Bernoulli(p) would be for the same draw (Uniform()
  // is k 2^-53 for the draw's top 53 bits k, and k 2^-53 < p iff k < ceil(p 2^53)).
  static uint64_t BernoulliBound(double p) {
    if (!(p > 0)) return 0;
    if (p >= 1) return uint64_t{1} << 53;
    return static_cast<uint64_t>(std::ceil(p * 0x1.0p53));
  }
  bool BernoulliBelow(uint64_t bound) { return (g_.Next() >> 11) < bound; }

  // (1 - q)^m for one probability, computed once per trial count m < kCached instead of
  // once per value (std::pow was 4% of RDA thinning); each entry is std::pow's own result.
  class PowTable {
   public:
    static constexpr int64_t kCached = 64;
    explicit PowTable(double p) : base_(1 - (p > 0.5 ? 1 - p : p)) {
      for (double& v : value_) v = -1;
    }
    double Of(double base, int64_t m) {
      if (base != base_ || m >= kCached) return std::pow(base, static_cast<double>(m));
      double& v = value_[m];
      if (v < 0) v = std::pow(base, static_cast<double>(m));
      return v;
    }

   private:
    double base_;
    double value_[kCached];
  };

  // `table`, when given, was made for this p.
  int64_t Binomial(int64_t n, double p, PowTable* table = nullptr) {
    if (n <= 0 || !(p > 0)) return 0;
    if (p >= 1) return n;
    const bool flip = p > 0.5;
    const double q = flip ? 1 - p : p;
    int64_t k = 0;
    for (int64_t left = n; left > 0;) {
      const int64_t m = std::min<int64_t>(left, 512);
      k += SmallBinomial(m, q, table);
      left -= m;
    }
    return flip ? n - k : k;
  }

  double Beta(int a, int b) {
    // a-th smallest of a + b - 1 uniforms; small a + b, so an insertion into a sorted
    // buffer is enough.
    double v[64];
    const int n = std::min(a + b - 1, 64);
    for (int i = 0; i < n; ++i) {
      double u = Uniform();
      int j = i;
      while (j > 0 && v[j - 1] > u) {
        v[j] = v[j - 1];
        --j;
      }
      v[j] = u;
    }
    return v[a - 1];
  }

  // log1m_p = log(1 - p), 0 < p < 1.
  int64_t GeometricGap(double log1m_p) {
    const double g = std::floor(std::log(UniformOpen()) / log1m_p);
    return g > 9e18 ? static_cast<int64_t>(9e18) : static_cast<int64_t>(g);
  }

 private:
  // BINV for m <= 512 trials and q <= 1/2.
  int64_t SmallBinomial(int64_t m, double q, PowTable* table) {
    if (m == 1) return Uniform() < q ? 1 : 0;
    const double s = q / (1 - q);
    const double a = static_cast<double>(m + 1) * s;
    double r = table ? table->Of(1 - q, m) : std::pow(1 - q, static_cast<double>(m));
    double u = Uniform();
    int64_t x = 0;
    while (u > r) {
      u -= r;
      ++x;
      if (x >= m) return m;  // only through rounding of the cumulative sum
      r *= a / static_cast<double>(x) - s;
    }
    return x;
  }

  plan_internal::Xoshiro256 g_;
};

}  // namespace cellfeed::transform
