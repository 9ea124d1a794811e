// Checks of matrix values as they are decoded: NaN/infinite values, and for count
// matrices negative or fractional ones, found in the same pass that writes them out
// (cache-hot, on the worker threads), so a check costs little next to the decoding.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "cellfeed/status.h"

namespace cellfeed::io {

enum class ValueCheck : uint8_t {
  kNone,    // values delivered as stored
  kFinite,  // no NaN or infinity
  kCounts,  // finite, >= 0 and whole numbers
};

inline const char* ValueCheckName(ValueCheck c) {
  switch (c) {
    case ValueCheck::kFinite: return "finite";
    case ValueCheck::kCounts: return "counts";
    default: return "any";
  }
}

// OpenOptions::values, by the names ValueCheckName gives.
inline Result<ValueCheck> ParseValueCheck(const std::string& values) {
  for (ValueCheck c : {ValueCheck::kFinite, ValueCheck::kCounts, ValueCheck::kNone}) {
    if (values == ValueCheckName(c)) return c;
  }
  return Status::Invalid("values must be 'finite', 'counts' or 'any', got '" + values + "'");
}

// The reductions below are also compiled for AVX2 and chosen at run time (GCC's
// target_clones), since the portable build may assume SSE2 only.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define CF_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CF_VECTOR_CLONES
#endif

// Both checks are written as integer/bitwise reductions without branches or
// short-circuits, so that the compiler vectorizes them (16-30 GB/s per core here, against
// 4-7 GB/s for the obvious loops).

// Whether any of v[0..n) is NaN or infinite: exactly those have all exponent bits set,
// and adding one to the exponent field then carries into bit 31.
CF_VECTOR_CLONES inline bool AnyNonFinite(const float* v, size_t n) {
  uint32_t acc = 0;
  for (size_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, v + i, 4);
    acc |= (bits & 0x7f800000u) + 0x00800000u;
  }
  return (acc & 0x80000000u) != 0;
}

// Whether x is a count: finite, >= 0, a whole number. Below 2^23, adding and subtracting
// 2^23 rounds x to an integer (the spacing of floats there is 1); from 2^23 on every
// finite float is a whole number.
inline uint32_t IsCountBit(float x) {
  const float rounded = (x + 8388608.0f) - 8388608.0f;
  return (uint32_t(x >= 0.0f) & uint32_t(x < 8388608.0f) & uint32_t(rounded == x)) |
         (uint32_t(x >= 8388608.0f) & uint32_t(x <= 3.4028235e38f));
}

CF_VECTOR_CLONES inline bool AnyNonCount(const float* v, size_t n) {
  uint32_t bad = 0;
  for (size_t i = 0; i < n; ++i) bad |= IsCountBit(v[i]) ^ 1u;
  return bad != 0;
}

inline bool IsFinite(float v) { return !AnyNonFinite(&v, 1); }
inline bool IsCount(float v) { return IsCountBit(v) != 0; }

// Index of the first value of v[0..n) that fails the check, or -1.
inline int64_t FirstBadValue(const float* v, size_t n, ValueCheck check) {
  if (check == ValueCheck::kNone) return -1;
  const bool bad = check == ValueCheck::kFinite ? AnyNonFinite(v, n) : AnyNonCount(v, n);
  if (!bad) return -1;
  for (size_t i = 0; i < n; ++i) {
    if (check == ValueCheck::kFinite ? !IsFinite(v[i]) : !IsCount(v[i])) return static_cast<int64_t>(i);
  }
  return -1;
}

// Index of the first of v[0..n) outside [0, bound), or -1 (column indices against n_vars).
// With U the unsigned type of T's width and bound - 1 within T's positive range,
// (U(bound - 1) - U(x)) | U(x) has its top bit set exactly when x < 0 or x >= bound: a
// subtract and an or per element, which vectorizes with plain SSE2 (the min/max
// reduction this replaces needs SSE4.1 for 32-bit lanes and ran unvectorized, at 12% of
// the uncompressed loader's time).
// The top bits of (last - x) | x over v[0..n) (see FirstOutsideRange).
template <typename U>
CF_VECTOR_CLONES U OutsideBits(const U* v, size_t n, U last) {
  U acc = 0;
  for (size_t i = 0; i < n; ++i) acc |= U(last - v[i]) | v[i];
  return acc;
}

template <typename T>
int64_t FirstOutsideRange(const T* v, size_t n, int64_t bound) {
  static_assert(std::is_integral_v<T>);
  using U = std::make_unsigned_t<T>;
  constexpr U kTop = U(U(1) << (sizeof(T) * 8 - 1));
  auto outside = [bound](T x) {
    return (std::is_signed_v<T> && x < T(0)) ||
           static_cast<uint64_t>(static_cast<U>(x)) >= static_cast<uint64_t>(bound);
  };
  if (bound <= 0) return n ? 0 : -1;
  U acc = 0;
  if (static_cast<uint64_t>(bound - 1) <= static_cast<uint64_t>(kTop - 1)) {
    acc = OutsideBits(reinterpret_cast<const U*>(v), n, static_cast<U>(bound - 1));
  } else if (std::is_signed_v<T>) {
    for (size_t i = 0; i < n; ++i) acc |= U(v[i]);  // every value >= 0 is below bound
  } else {
    acc = kTop;  // bound beyond half of T's range, unsigned: search directly (rare)
  }
  if ((acc & kTop) == 0) return -1;
  for (size_t i = 0; i < n; ++i) {
    if (outside(v[i])) return static_cast<int64_t>(i);
  }
  return -1;
}

// What is wrong with a value that failed a check.
inline std::string BadValueReason(float v) {
  if (std::isnan(v)) return "is NaN";
  if (std::isinf(v)) return "is infinite";
  if (v < 0) return "is negative";
  return "is not a whole number";
}

}  // namespace cellfeed::io
