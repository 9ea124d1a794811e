// Binomial thinning, as an augmentation and as read-depth-aware (RDA) downsampling.
//
// Thin: every count x becomes Binomial(x, p), p = fraction or min(1, target / total).
// RDA (AIDO.Cell's paper): u ~ Bernoulli(probability) per cell; when u = 1,
// b ~ Beta(a, b) and X = Binomial(X_raw, b) per value; the raw counts stay as target.
// Both draw from the cell's own stream (seed, epoch, cell key, purpose, step index).
// Values are integer counts: the pipeline checks that when it gathers the cell.
#include "transform/cell_rng.h"
#include "transform/cell_state.h"

namespace cellfeed::transform {

namespace {

double ThinValues(std::vector<double>& x, double p, CellRng& rng) {
  CellRng::PowTable table(p);
  double total = 0;
  for (double& v : x) {
    v = static_cast<double>(rng.Binomial(static_cast<int64_t>(v), p, &table));
    total += v;
  }
  return total;
}

}  // namespace

void ApplyThin(const Thin& s, const StepContext& ctx, CellState& c) {
  double p = s.fraction;
  if (s.target_total > 0) p = c.total > s.target_total ? s.target_total / c.total : 1.0;
  if (p >= 1) return;
  CellRng rng(CellStreamKey(ctx.seed, ctx.epoch, c.key, kPurposeThin, ctx.step_index));
  c.total = ThinValues(c.x, p, rng);
}

void ApplyRda(const RdaDownsample& s, const StepContext& ctx, CellState& c) {
  c.target = c.x;
  c.has_target = true;
  CellRng rng(CellStreamKey(ctx.seed, ctx.epoch, c.key, kPurposeRda, ctx.step_index));
  c.downsampled = rng.Bernoulli(s.probability);
  if (!c.downsampled) return;
  const double b = rng.Beta(s.beta_a, s.beta_b);
  c.total = ThinValues(c.x, b, rng);
}

}  // namespace cellfeed::transform
