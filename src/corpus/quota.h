// Rounding a total into integer shares.
#pragma once

#include <cstdint>
#include <vector>

namespace cellfeed::corpus {

// Shares of `total` proportional to `mass` (>= 0, not all 0 unless total is 0) that sum to
// exactly `total`: floors first, then one more to the largest remainders; ties go to the
// lower index (deterministic). Entries of mass 0 get 0.
std::vector<int64_t> LargestRemainder(int64_t total, const std::vector<double>& mass);

}  // namespace cellfeed::corpus
