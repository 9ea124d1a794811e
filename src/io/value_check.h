// Checks of matrix values as they are decoded: NaN/infinite values, and for count
// matrices negative or fractional ones, found in the same pass that writes them out
// (cache-hot, on the worker threads), so a check costs little next to the decoding.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

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

// A count as float32: every float >= 2^23 is a whole number; below, the value must
// survive a round trip through int32 (written branch-free so the loop vectorizes).
inline bool IsCount(float v) {
  const bool small = v >= 0.0f && v < 8388608.0f;
  const float c = small ? v : 0.0f;
  return (v >= 8388608.0f && v <= 3.4028235e38f) || (small && c == static_cast<float>(static_cast<int32_t>(c)));
}

inline bool IsFinite(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  return (bits & 0x7f800000u) != 0x7f800000u;
}

// Index of the first value of v[0..n) that fails the check, or -1.
inline int64_t FirstBadValue(const float* v, size_t n, ValueCheck check) {
  if (check == ValueCheck::kNone) return -1;
  bool bad = false;
  if (check == ValueCheck::kFinite) {
    for (size_t i = 0; i < n; ++i) bad |= !IsFinite(v[i]);
  } else {
    for (size_t i = 0; i < n; ++i) bad |= !IsCount(v[i]);
  }
  if (!bad) return -1;
  for (size_t i = 0; i < n; ++i) {
    if (check == ValueCheck::kFinite ? !IsFinite(v[i]) : !IsCount(v[i])) return static_cast<int64_t>(i);
  }
  return -1;
}

// What is wrong with a value that failed `check`.
inline std::string BadValueReason(float v, ValueCheck check) {
  if (std::isnan(v)) return "is NaN";
  if (std::isinf(v)) return "is infinite";
  if (v < 0) return "is negative";
  return "is not a whole number";
  (void)check;
}

}  // namespace cellfeed::io
