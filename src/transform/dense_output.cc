// The dense panel output (scFoundation, AIDO.Cell): one row of vocab_size values per
// cell, zero-filled for genes the cell lacks, then the two depth tokens (T, S).
//
// Tensors: "values" [n, W] float32/bfloat16 (W = vocab_size, + 2 with depth tokens),
// "attention_mask" [n, W] bool (1 for genes the cell's file has, and the tokens),
// with masking "mask" [n, W] bool (1 = masked: the loss positions), with an RDA step
// "target" [n, vocab_size] float32 (the raw cell through the same later steps) and
// "downsampled" [n] bool.
//
// Masking draws, per cell, Bernoulli(nonzero) for every nonzero position and visits the
// Bernoulli(zero) successes over all positions with geometric gaps (about zero * W draws
// instead of W); successes that land on a nonzero or absent gene are ignored, so every
// present zero is masked independently with probability `zero`.
#include <cmath>
#include <cstring>

#include "transform/cell_rng.h"
#include "transform/cell_state.h"
#include "transform/stream_store.h"

namespace cellfeed::transform {

namespace {

enum { kValues, kAttention, kMask, kTarget, kDownsampled };

uint16_t ToBFloat16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7FFF + ((u >> 16) & 1);  // round to nearest even (values are finite)
  return static_cast<uint16_t>(u >> 16);
}

void DepthPair(const DenseOutput& o, const CellState& c, double& t, double& s) {
  if (o.depth == DepthTokens::kAidoCell) {
    auto token = [](double total) {
      const double l = total > 0 ? std::log10(total) : 5.0;
      return std::min(std::max(l, 5.0), 20.0);
    };
    t = token(c.raw_total);
    s = token(c.total);
    return;
  }
  s = c.total > 0 ? std::log10(c.total) : 0.0;
  switch (o.t_mode) {
    case TMode::kConstant: t = o.t_value; break;
    case TMode::kRawTotal: t = c.raw_total > 0 ? std::log10(c.raw_total) : 0.0; break;
    case TMode::kSPlus: t = s + o.t_value; break;
  }
}

}  // namespace

void LayoutDense(const DenseOutput& o, const StageContext& ctx, int64_t n, Outputs& out) {
  const int64_t V = ctx.map->vocab_size;
  const int64_t W = V + (o.depth == DepthTokens::kNone ? 0 : 2);
  out.tensors.resize(5);
  ShapeTensor(out.tensors[kValues], "values",
              o.dtype == ValueType::kBFloat16 ? TensorType::kBFloat16 : TensorType::kFloat32, {n, W});
  ShapeTensor(out.tensors[kAttention], "attention_mask", TensorType::kBool, {n, W});
  size_t used = 2;
  if (o.mask) ShapeTensor(out.tensors[used++], "mask", TensorType::kBool, {n, W});
  if (ctx.has_target) {
    ShapeTensor(out.tensors[used++], "target", TensorType::kFloat32, {n, V});
    ShapeTensor(out.tensors[used++], "downsampled", TensorType::kBool, {n});
  }
  out.tensors.resize(used);
}

void WriteDense(const DenseOutput& o, const StageContext& ctx, const CellState& c, int64_t i,
                Outputs& out) {
  const int64_t V = ctx.map->vocab_size;
  const bool tokens = o.depth != DepthTokens::kNone;
  const int64_t W = V + (tokens ? 2 : 0);
  const uint8_t* present = ctx.map->Present(c.file).data();
  size_t slot = 2;
  Tensor* mask_t = o.mask ? &out.tensors[slot++] : nullptr;
  Tensor* target_t = ctx.has_target ? &out.tensors[slot++] : nullptr;
  Tensor* down_t = ctx.has_target ? &out.tensors[slot++] : nullptr;

  // Rows are built in cache-resident scratch and streamed into the tensors
  // (stream_store.h): the tensors' lines are then written without being read first.
  // The scratch rows are all zeros between cells: each cell puts its values in and takes
  // them out again, instead of clearing the whole row (memset was 7% of a dense preset).
  CellState::Scratch& sc = c.scratch;
  if (sc.dense.size() != static_cast<size_t>(W)) sc.dense.assign(static_cast<size_t>(W), 0.0f);
  float* row = sc.dense.data();
  for (size_t k = 0; k < c.idx.size(); ++k) row[c.idx[k]] = static_cast<float>(c.x[k]);
  if (tokens) {
    double t = 0, s = 0;
    DepthPair(o, c, t, s);
    row[V] = static_cast<float>(t);
    row[V + 1] = static_cast<float>(s);
  }
  uint8_t* att = out.tensors[kAttention].data.data() + i * W;
  StreamCopy(att, present, static_cast<size_t>(V));
  if (tokens) att[V] = att[V + 1] = 1;

  std::vector<int32_t>& masked = sc.masked;
  masked.clear();
  if (mask_t) {
    if (sc.mask_row.size() != static_cast<size_t>(W)) sc.mask_row.assign(static_cast<size_t>(W), 0);
    uint8_t* m = sc.mask_row.data();
    CellRng rng(CellStreamKey(ctx.seed, ctx.epoch, c.key, kPurposeValueMask));
    const ValueMask& vm = o.value_mask;
    const uint64_t nonzero_bound = CellRng::BernoulliBound(vm.nonzero);
    // The masked positions are also listed, so replacing their values touches only them
    // (~0.3 nnz + 0.03 V of them) instead of scanning the row.
    for (size_t k = 0; k < c.idx.size(); ++k) {
      if (c.x[k] != 0 && rng.BernoulliBelow(nonzero_bound)) {
        m[c.idx[k]] = 1;
        masked.push_back(c.idx[k]);
      }
    }
    // Zero positions: row[j] == 0 excludes the nonzero ones, so none is listed twice.
    if (vm.zero >= 1) {
      for (int64_t j = 0; j < V; ++j) {
        if (present[j] && row[j] == 0) {
          m[j] = 1;
          masked.push_back(static_cast<int32_t>(j));
        }
      }
    } else if (vm.zero > 0) {
      const double log1m = std::log1p(-vm.zero);
      for (int64_t j = rng.GeometricGap(log1m); j < V; j += 1 + rng.GeometricGap(log1m)) {
        if (present[j] && row[j] == 0) {
          m[j] = 1;
          masked.push_back(static_cast<int32_t>(j));
        }
      }
    }
    for (int32_t j : masked) row[j] = vm.value;
    StreamCopy(mask_t->data.data() + i * W, m, static_cast<size_t>(W));
    for (int32_t j : masked) m[j] = 0;
  }
  if (o.dtype == ValueType::kBFloat16) {
    sc.bf16_row.resize(static_cast<size_t>(W));
    for (int64_t j = 0; j < W; ++j) sc.bf16_row[static_cast<size_t>(j)] = ToBFloat16(row[j]);
    StreamCopy(out.tensors[kValues].data.data() + i * W * 2, sc.bf16_row.data(),
               static_cast<size_t>(W) * 2);
  } else {
    StreamCopy(out.tensors[kValues].data.data() + i * W * 4, row, static_cast<size_t>(W) * 4);
  }
  // The values are out: back to zeros (the target, when there is one, goes on the same
  // genes, so those are overwritten rather than cleared).
  for (int32_t j : masked) row[j] = 0;
  if (tokens) row[V] = row[V + 1] = 0;
  if (target_t) {
    for (size_t k = 0; k < c.idx.size(); ++k) row[c.idx[k]] = static_cast<float>(c.target[k]);
    StreamCopy(target_t->data.data() + i * V * 4, row, static_cast<size_t>(V) * 4);
    down_t->data[static_cast<size_t>(i)] = c.downsampled ? 1 : 0;
  }
  for (size_t k = 0; k < c.idx.size(); ++k) row[c.idx[k]] = 0;
}

}  // namespace cellfeed::transform
