// Geneformer rank-value encoding.
//
// Per cell: x_norm[g] = x[g] / n_counts * 10,000 / median[g] over its nonzero genes
// (n_counts over all genes of the row, as Geneformer's tokenizer, or over the mapped
// genes only, as BioNeMo); genes ranked by descending x_norm with ties in vocabulary
// order (a stable sort; Geneformer's argsort is not stable); V1 keeps the first 2,048
// tokens, V2 puts <cls> first and <eos> last around the first 4,094. Rows are padded to
// the fixed length with <pad>, or (pad_to_batch) to the batch's longest row: Write then
// keeps each cell's ranked gene ids in a batch scratch (~6 KB a cell, in cache) and
// FinishRank writes every row once at the batch's width. Writing rows at the full width
// and moving them together afterwards touched 4,096-wide rows of three tensors and copied
// them again (memmove was 13% of the pad_to_batch preset).
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

void ShapeRows(const RankOutput& o, int64_t n, int64_t L, Outputs& out) {
  ShapeTensor(out.tensors[kIds], "input_ids", TensorType::kInt64, {n, L});
  ShapeTensor(out.tensors[kAttention], "attention_mask", TensorType::kBool, {n, L});
  if (o.mlm) ShapeTensor(out.tensors[kLabels], "labels", TensorType::kInt64, {n, L});
}

int32_t GeneId(const KeyedId& g) { return g.id; }
int32_t GeneId(int32_t g) { return g; }

// Row r of a batch `width` positions wide: <cls>, the genes, <eos>, then <pad>; its mask
// and labels.
template <typename Gene>
void WriteRow(const RankOutput& o, const StageContext& ctx, uint64_t cell_key, const Gene* genes,
              size_t keep, Outputs& out, int64_t r, int64_t width) {
  const bool special = o.version != 1;
  int64_t* ids = reinterpret_cast<int64_t*>(out.tensors[kIds].data.data()) + r * width;
  uint8_t* att = out.tensors[kAttention].data.data() + r * width;
  int64_t len = 0;
  if (special) ids[len++] = o.cls_id;
  for (size_t k = 0; k < keep; ++k) ids[len++] = GeneId(genes[k]);
  if (special) ids[len++] = o.eos_id;
  for (int64_t j = len; j < width; ++j) ids[j] = o.pad_id;
  std::memset(att, 1, static_cast<size_t>(len));
  std::memset(att + len, 0, static_cast<size_t>(width - len));
  if (o.mlm) {
    int64_t* labels = reinterpret_cast<int64_t*>(out.tensors[kLabels].data.data()) + r * width;
    std::fill(labels, labels + width, int64_t{-100});
    MaskTokens(o, ctx.map->vocab_size, CellStreamKey(ctx.seed, ctx.epoch, cell_key, kPurposeTokenMask),
               ids, labels, special ? 1 : 0, special ? len - 1 : len);
  }
}

}  // namespace

void LayoutRank(const RankOutput& o, const StageContext& ctx, int64_t n, Outputs& out) {
  out.tensors.resize(o.mlm ? 4 : 3);
  if (!o.pad_to_batch) ShapeRows(o, n, RowLength(o), out);  // else in FinishRank
  ShapeTensor(out.tensors[kLength], "length", TensorType::kInt64, {n});
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
  const int64_t len = static_cast<int64_t>(keep) + (special ? 2 : 0);
  reinterpret_cast<int64_t*>(out.tensors[kLength].data.data())[i] = len;

  if (o.pad_to_batch) {  // kept for FinishRank, once the batch's width is known
    CellState::Scratch::RankRows& rows = c.scratch.rank_rows;
    if (i == 0) {
      rows.genes.clear();
      rows.begin.clear();
      rows.keys.clear();
    }
    rows.begin.push_back(rows.genes.size());
    rows.keys.push_back(c.key);
    for (size_t k = 0; k < keep; ++k) rows.genes.push_back(ranked[k].id);
    return;
  }
  WriteRow(o, ctx, c.key, ranked.data(), keep, out, i, L);
}

void FinishRank(const RankOutput& o, const StageContext& ctx, const CellState& c, int64_t n,
                Outputs& out) {
  if (!o.pad_to_batch) return;
  const int64_t* len = reinterpret_cast<const int64_t*>(out.tensors[kLength].data.data());
  const int64_t Lb = LongestRow(len, n);
  ShapeRows(o, n, Lb, out);
  const CellState::Scratch::RankRows& rows = c.scratch.rank_rows;
  const int64_t specials = o.version != 1 ? 2 : 0;
  for (int64_t r = 0; r < n; ++r) {
    const size_t row = static_cast<size_t>(r);
    WriteRow(o, ctx, rows.keys[row], rows.genes.data() + rows.begin[row],
             static_cast<size_t>(len[r] - specials), out, r, Lb);
  }
}

}  // namespace cellfeed::transform
