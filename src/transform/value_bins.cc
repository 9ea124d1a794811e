// scGPT value binning and collation.
//
// Binning (scgpt.preprocess.binning): over a cell's nonzero values, edges = the numpy
// "linear" quantiles at linspace(0, 1, n_bins - 1) (computed with numpy's own virtual
// index and lerp, so edges equal numpy's); l = #edges <= x, r = #edges < x (numpy's
// digitize, right=False / True); bin = ceil(U * (r - l) + l), U uniform from the cell's
// stream: ties are spread at random over [r + 1, l]. Zeros stay 0; bins are 1..n_bins-1.
//
// Collation (scgpt.data_collator): <cls> (value cls_value) first, then the cell's genes
// in vocabulary order; longer cells keep <cls> and max_length - 1 genes drawn at random
// without replacement (kept in vocabulary order) or the first ones; padded with pad_id
// and pad_value (to max_length, or with pad_to_batch to the batch's longest row, which
// FinishBinned does after the rows are written); each non-pad, non-cls position is masked with probability mask_ratio.
//
// Tensors: "gene_ids" [n, L] int64, "values" [n, L] float32 (bins), "masked_values"
// [n, L] float32, "attention_mask" [n, L] bool (0 at padding), "length" [n] int64.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "transform/cell_rng.h"
#include "transform/cell_state.h"

namespace cellfeed::transform {

namespace {

enum { kIds, kValues, kMasked, kAttention, kLength };

// numpy.quantile(v, q, method="linear") of n sorted values, at(i) the i-th smallest, with
// numpy's arithmetic: virtual index (n - 1) q, its floor and fraction, and numpy's
// two-sided lerp.
template <class At>
double LinearQuantile(size_t count, double q, const At& at) {
  const double n = static_cast<double>(count);
  const double virt = (n - 1) * q;  // numpy's virtual index of the "linear" method
  double prev = std::floor(virt);
  const double gamma = virt - prev;
  const double last = n - 1;
  prev = std::clamp(prev, 0.0, last);
  const double next = std::clamp(std::floor(virt) + 1, 0.0, last);
  const double a = at(static_cast<size_t>(prev)), b = at(static_cast<size_t>(next));
  const double diff = b - a;
  return gamma >= 0.5 ? b - diff * (1 - gamma) : a + diff * gamma;
}

// The n_bins - 1 edges at linspace(0, 1, n_bins - 1) of n sorted values.
template <class At>
void FillEdges(std::vector<double>& edges, size_t count, const At& at) {
  const int n_edges = static_cast<int>(edges.size());
  for (int e = 0; e < n_edges; ++e) {
    const double q = e == n_edges - 1 ? 1.0 : e * (1.0 / (n_edges - 1));
    edges[static_cast<size_t>(e)] = LinearQuantile(count, q, at);
  }
}

}  // namespace

bool DistinctValues::Collect(const std::vector<double>& x) {
  if (++stamp_ == 0) {  // wrapped: clear the stamps once every 2^32 cells
    for (Slot& s : slots_) s.stamp = 0;
    stamp_ = 1;
  }
  n_ = 0;
  total_ = 0;
  for (double v : x) {
    if (v == 0) continue;
    const uint64_t bits = Bits(v);
    size_t i = static_cast<size_t>((bits * 0x9E3779B97F4A7C15ULL) >> 54);
    while (slots_[i].stamp == stamp_ && slots_[i].bits != bits) i = (i + 1) & (kSlots - 1);
    Slot& s = slots_[i];
    if (s.stamp != stamp_) {
      if (n_ == kMax) return false;
      s = {bits, 0, stamp_, 0, 0};
      used_[n_++] = i;
    }
    ++s.count;
    ++total_;
  }
  std::sort(used_, used_ + n_, [this](size_t a, size_t b) {
    double x, y;
    std::memcpy(&x, &slots_[a].bits, sizeof x);
    std::memcpy(&y, &slots_[b].bits, sizeof y);
    return x < y;
  });
  uint64_t run = 0;
  for (size_t j = 0; j < n_; ++j) cum_[j] = run += slots_[used_[j]].count;
  return true;
}

double DistinctValues::At(size_t pos) const {
  // The element at a position of the sorted multiset, from the running counts.
  const size_t j = static_cast<size_t>(std::upper_bound(cum_, cum_ + n_, static_cast<uint64_t>(pos)) - cum_);
  double v;
  std::memcpy(&v, &slots_[used_[j]].bits, sizeof v);
  return v;
}

void DistinctValues::CountEdges(const std::vector<double>& edges) {
  for (size_t j = 0; j < n_; ++j) {
    Slot& s = slots_[used_[j]];
    double x;
    std::memcpy(&x, &s.bits, sizeof x);
    s.le = static_cast<int32_t>(std::upper_bound(edges.begin(), edges.end(), x) - edges.begin());
    s.lt = static_cast<int32_t>(std::lower_bound(edges.begin(), edges.end(), x) - edges.begin());
  }
}

void LayoutBinned(const BinnedOutput& o, const StageContext& ctx, int64_t n, Outputs& out) {
  const int64_t L = o.max_length;
  out.tensors.resize(5);
  ShapeTensor(out.tensors[kIds], "gene_ids", TensorType::kInt64, {n, L});
  ShapeTensor(out.tensors[kValues], "values", TensorType::kFloat32, {n, L});
  ShapeTensor(out.tensors[kMasked], "masked_values", TensorType::kFloat32, {n, L});
  ShapeTensor(out.tensors[kAttention], "attention_mask", TensorType::kBool, {n, L});
  ShapeTensor(out.tensors[kLength], "length", TensorType::kInt64, {n});
}

void WriteBinned(const BinnedOutput& o, const StageContext& ctx, const CellState& c, int64_t i,
                 Outputs& out) {
  const int64_t L = o.max_length;
  const int64_t V = ctx.map->vocab_size;
  const int32_t cls_id = o.cls_id >= 0 ? o.cls_id : static_cast<int32_t>(V);
  const int32_t pad_id = o.pad_id >= 0 ? o.pad_id : static_cast<int32_t>(V + 1);
  const uint8_t* present = ctx.map->Present(c.file).data();

  // Bins of the nonzero values.
  std::vector<double>&sorted = c.scratch.sorted, &edges = c.scratch.edges;
  std::vector<int32_t>& genes = c.scratch.genes;
  std::vector<float>& bins = c.scratch.bins;
  DistinctValues& distinct = c.scratch.distinct;
  edges.resize(static_cast<size_t>(o.n_bins - 1));
  // A cell's normalized counts take few distinct values: their counts give the quantiles
  // (the same elements a full sort would pick) and each value's edge counts are found once.
  const bool few = distinct.Collect(c.x);
  if (few) {
    if (distinct.total() > 0) {
      FillEdges(edges, distinct.total(), [&](size_t i) { return distinct.At(i); });
      distinct.CountEdges(edges);
    }
  } else {
    sorted.clear();
    for (double x : c.x)
      if (x != 0) sorted.push_back(x);
    std::sort(sorted.begin(), sorted.end());
    if (!sorted.empty()) FillEdges(edges, sorted.size(), [&](size_t i) { return sorted[i]; });
  }
  CellRng ties(CellStreamKey(ctx.seed, ctx.epoch, c.key, kPurposeBins));
  // Genes of the cell: nonzero ones (or every present gene), with their bins.
  genes.clear();
  bins.clear();
  size_t k = 0;
  auto bin_of = [&](double x) -> float {
    if (x == 0) return 0.0f;
    int64_t lo, hi;  // #edges <= x, #edges < x
    if (few) {
      distinct.EdgeCounts(x, lo, hi);
    } else {
      lo = std::upper_bound(edges.begin(), edges.end(), x) - edges.begin();
      hi = std::lower_bound(edges.begin(), edges.end(), x) - edges.begin();
    }
    const double u = ties.Uniform();
    return static_cast<float>(std::ceil(u * static_cast<double>(hi - lo) + static_cast<double>(lo)));
  };
  if (o.include_zeros) {
    for (int64_t g = 0; g < V; ++g) {
      if (!present[g]) continue;
      while (k < c.idx.size() && c.idx[k] < g) ++k;
      const double x = (k < c.idx.size() && c.idx[k] == g) ? c.x[k] : 0.0;
      genes.push_back(static_cast<int32_t>(g));
      bins.push_back(bin_of(x));
    }
  } else {
    for (size_t j = 0; j < c.idx.size(); ++j) {
      if (c.x[j] == 0) continue;
      genes.push_back(c.idx[j]);
      bins.push_back(bin_of(c.x[j]));
    }
  }
  // Keep at most L - 1 genes.
  const size_t room = static_cast<size_t>(L - 1);
  size_t n_keep = genes.size();
  if (genes.size() > room) {
    n_keep = room;
    if (o.sample) {
      // Partial Fisher-Yates over positions, then back to vocabulary order.
      CellRng pick(CellStreamKey(ctx.seed, ctx.epoch, c.key, kPurposeSample));
      std::vector<int32_t>& pos = c.scratch.pos;
      pos.resize(genes.size());
      for (size_t j = 0; j < pos.size(); ++j) pos[j] = static_cast<int32_t>(j);
      for (size_t j = 0; j < room; ++j) {
        const size_t r = j + static_cast<size_t>(pick.Below(pos.size() - j));
        std::swap(pos[j], pos[r]);
      }
      std::sort(pos.begin(), pos.begin() + static_cast<std::ptrdiff_t>(room));
      for (size_t j = 0; j < room; ++j) {
        genes[j] = genes[static_cast<size_t>(pos[j])];
        bins[j] = bins[static_cast<size_t>(pos[j])];
      }
    }
  }
  int64_t* ids = reinterpret_cast<int64_t*>(out.tensors[kIds].data.data()) + i * L;
  float* val = reinterpret_cast<float*>(out.tensors[kValues].data.data()) + i * L;
  float* masked = reinterpret_cast<float*>(out.tensors[kMasked].data.data()) + i * L;
  uint8_t* att = out.tensors[kAttention].data.data() + i * L;
  ids[0] = cls_id;
  val[0] = o.cls_value;
  for (size_t j = 0; j < n_keep; ++j) {
    ids[j + 1] = genes[j];
    val[j + 1] = bins[j];
  }
  const int64_t len = static_cast<int64_t>(n_keep) + 1;
  const int64_t filled = o.pad_to_batch ? len : L;  // padding now, or in FinishBinned
  for (int64_t j = len; j < filled; ++j) {
    ids[j] = pad_id;
    val[j] = o.pad_value;
  }
  std::memcpy(masked, val, static_cast<size_t>(filled) * sizeof(float));
  CellRng mask(CellStreamKey(ctx.seed, ctx.epoch, c.key, kPurposeValueMask));
  const uint64_t mask_bound = CellRng::BernoulliBound(o.mask_ratio);
  // A select in integers, not a branch: at mask_ratio 0.4 the branch goes either way
  // about half the time (its mispredictions were a fifth of this function).
  uint32_t mask_bits;
  std::memcpy(&mask_bits, &o.mask_value, 4);
  for (int64_t j = 1; j < len; ++j) {
    const uint32_t take = 0u - static_cast<uint32_t>(mask.BernoulliBelow(mask_bound));
    uint32_t v;
    std::memcpy(&v, masked + j, 4);
    v = (mask_bits & take) | (v & ~take);
    std::memcpy(masked + j, &v, 4);
  }
  std::memset(att, 1, static_cast<size_t>(len));
  std::memset(att + len, 0, static_cast<size_t>(filled - len));
  reinterpret_cast<int64_t*>(out.tensors[kLength].data.data())[i] = len;
}

void FinishBinned(const BinnedOutput& o, const StageContext& ctx, int64_t n, Outputs& out) {
  if (!o.pad_to_batch) return;
  const int64_t* len = reinterpret_cast<const int64_t*>(out.tensors[kLength].data.data());
  const int64_t L = o.max_length;
  const int64_t Lb = LongestRow(len, n);
  const int64_t pad_id = o.pad_id >= 0 ? o.pad_id : ctx.map->vocab_size + 1;
  const uint8_t off = 0;
  ShrinkRows(out.tensors[kIds], L, Lb, len, &pad_id);
  ShrinkRows(out.tensors[kValues], L, Lb, len, &o.pad_value);
  ShrinkRows(out.tensors[kMasked], L, Lb, len, &o.pad_value);
  ShrinkRows(out.tensors[kAttention], L, Lb, len, &off);
}

}  // namespace cellfeed::transform
