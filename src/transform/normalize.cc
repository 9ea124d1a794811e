// normalize_total, log1p and clipping of one cell (scanpy's definitions).
//
// normalize_total: x * target / sum(x), the sum in float64 over the cell's current
// values on the vocabulary; an empty cell (sum 0) stays all zero, never NaN (scanpy
// also leaves such rows at zero). The raw target copy, when present, is normalized by
// its own sum, so the model predicts the normalized raw cell.
#include <algorithm>
#include <cmath>

#include "transform/cell_state.h"

namespace cellfeed::transform {

namespace {

void Normalize(std::vector<double>& v, double target) {
  double sum = 0;
  for (double x : v) sum += x;
  if (!(sum > 0)) return;
  const double scale = target / sum;
  for (double& x : v) x *= scale;
}

}  // namespace

void ApplyNormalizeTotal(const NormalizeTotal& s, CellState& c) {
  Normalize(c.x, s.target);
  if (c.has_target) Normalize(c.target, s.target);
}

void ApplyLog1p(CellState& c) {
  Log1pMemo& log1p = c.scratch.log1p;
  for (double& x : c.x) x = log1p(x);
  if (c.has_target)
    for (double& x : c.target) x = log1p(x);
}

void ApplyClip(const Clip& s, CellState& c) {
  for (double& x : c.x) x = std::clamp(x, s.min, s.max);
  if (c.has_target)
    for (double& x : c.target) x = std::clamp(x, s.min, s.max);
}

}  // namespace cellfeed::transform
