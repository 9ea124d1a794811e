// Geneformer rank-value encoding.
//
// Per cell: x_norm[g] = x[g] / n_counts * 10,000 / median[g] over its nonzero genes
// (n_counts over all genes of the row, as Geneformer's tokenizer, or over the mapped
// genes only, as BioNeMo); genes ranked by descending x_norm with ties in vocabulary
// order (a stable sort; Geneformer's argsort is not stable); V1 keeps the first 2,048
// tokens, V2 puts <cls> first and <eos> last around the first 4,094. Rows are padded to
// the fixed length with <pad>, or (pad_to_batch) to the batch's longest row: Write then
// leaves the padding out and FinishRank moves the rows together and pads them.
//
// Tensors: "input_ids" [n, L] int64, "attention_mask" [n, L] bool, "length" [n] int64,
// with MLM "labels" [n, L] int64 (-100 where not selected).
#include <algorithm>
#include <cstring>

#include "transform/cell_rng.h"
#include "transform/cell_state.h"
#include "transform/radix_sort.h"

namespace cellfeed::transform {

namespace {

enum { kIds, kAttention, kLength, kLabels };

int64_t RowLength(const RankOutput& o) {
  if (o.max_tokens > 0) return o.max_tokens;
  return o.version == 1 ? 2048 : 4096;
}

}  // namespace

void LayoutRank(const RankOutput& o, const StageContext& ctx, int64_t n, Outputs& out) {
  const int64_t L = RowLength(o);
  out.tensors.resize(o.mlm ? 4 : 3);
  ShapeTensor(out.tensors[kIds], "input_ids", TensorType::kInt64, {n, L});
  ShapeTensor(out.tensors[kAttention], "attention_mask", TensorType::kBool, {n, L});
  ShapeTensor(out.tensors[kLength], "length", TensorType::kInt64, {n});
  if (o.mlm) ShapeTensor(out.tensors[kLabels], "labels", TensorType::kInt64, {n, L});
}

void WriteRank(const RankOutput& o, const StageContext& ctx, const CellState& c, int64_t i,
               Outputs& out) {
  const int64_t L = RowLength(o);
  const bool special = o.version != 1;
  const int64_t genes_max = special ? L - 2 : L;
  const double n_counts = o.n_counts_all_genes ? c.all_total : c.total;

  std::vector<KeyedId>& ranked = c.scratch.ranked;
  ranked.clear();
  if (n_counts > 0) {
    for (size_t k = 0; k < c.idx.size(); ++k) {
      const double med = o.medians[static_cast<size_t>(c.idx[k])];
      if (c.x[k] == 0 || !(med > 0)) continue;
      ranked.push_back({DescendingKey(c.x[k] / n_counts * 10000.0 / med), c.idx[k]});
    }
  }
  // x_norm descending, ties in vocabulary order: the stable order (ids come ascending).
  RadixSortByKey(ranked, c.scratch.ranked_tmp, c.scratch.ranked_count);
  const size_t keep = std::min<size_t>(ranked.size(), static_cast<size_t>(genes_max));

  int64_t* ids = reinterpret_cast<int64_t*>(out.tensors[kIds].data.data()) + i * L;
  int64_t len = 0;
  if (special) ids[len++] = o.cls_id;
  for (size_t k = 0; k < keep; ++k) ids[len++] = ranked[k].id;
  if (special) ids[len++] = o.eos_id;
  const int64_t filled = o.pad_to_batch ? len : L;  // padding now, or in FinishRank
  for (int64_t j = len; j < filled; ++j) ids[j] = o.pad_id;
  uint8_t* att = out.tensors[kAttention].data.data() + i * L;
  std::memset(att, 1, static_cast<size_t>(len));
  std::memset(att + len, 0, static_cast<size_t>(filled - len));
  reinterpret_cast<int64_t*>(out.tensors[kLength].data.data())[i] = len;
  if (o.mlm) {
    int64_t* labels = reinterpret_cast<int64_t*>(out.tensors[kLabels].data.data()) + i * L;
    std::fill(labels, labels + filled, int64_t{-100});
    MaskTokens(o, ctx.map->vocab_size,
               CellStreamKey(ctx.seed, ctx.epoch, c.key, kPurposeTokenMask), ids, labels,
               special ? 1 : 0, special ? len - 1 : len);
  }
}

void FinishRank(const RankOutput& o, int64_t n, Outputs& out) {
  if (!o.pad_to_batch) return;
  const int64_t* len = reinterpret_cast<const int64_t*>(out.tensors[kLength].data.data());
  const int64_t L = RowLength(o);
  const int64_t Lb = LongestRow(len, n);
  const int64_t pad = o.pad_id, no_label = -100;
  const uint8_t off = 0;
  ShrinkRows(out.tensors[kIds], L, Lb, len, &pad);
  ShrinkRows(out.tensors[kAttention], L, Lb, len, &off);
  if (o.mlm) ShrinkRows(out.tensors[kLabels], L, Lb, len, &no_label);
}

}  // namespace cellfeed::transform
