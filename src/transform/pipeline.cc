// A Pipeline: gather each cell of a fetch onto the vocabulary, run the steps, write the
// output stage's row. Rows are independent, so the result of a cell depends only on its
// values, its file, its key and (seed, epoch): never on the fetch it came in.
//
// Gathering maps each stored value through its file's column -> vocabulary map, sorts by
// vocabulary id when the map does not preserve order and sums the values that land on
// one id. Pipelines that draw counts (Thin, RdaDownsample) first check that every value
// of the cell is a non-negative integer, naming file, row and gene when one is not.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "transform/cell_state.h"

namespace cellfeed::transform {

size_t TensorTypeSize(TensorType t) {
  switch (t) {
    case TensorType::kFloat32: return 4;
    case TensorType::kBFloat16: return 2;
    case TensorType::kInt64: return 8;
    case TensorType::kBool: return 1;
  }
  return 1;
}

std::string TensorTypeName(TensorType t) {
  switch (t) {
    case TensorType::kFloat32: return "float32";
    case TensorType::kBFloat16: return "bfloat16";
    case TensorType::kInt64: return "int64";
    case TensorType::kBool: return "bool";
  }
  return "?";
}

int64_t Tensor::row_bytes() const {
  int64_t n = static_cast<int64_t>(TensorTypeSize(type));
  for (size_t d = 1; d < shape.size(); ++d) n *= shape[d];
  return n;
}

const Tensor* Outputs::Find(const std::string& name) const {
  for (const Tensor& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

void ShapeTensor(Tensor& t, const char* name, TensorType type, std::vector<int64_t> shape) {
  if (t.name != name) t.name = name;
  t.type = type;
  t.shape = std::move(shape);
  int64_t bytes = static_cast<int64_t>(TensorTypeSize(type));
  for (int64_t d : t.shape) bytes *= d;
  ResizeForOverwrite(t.data, static_cast<size_t>(bytes));
}

int64_t LongestRow(const int64_t* len, int64_t n) {
  int64_t m = 1;
  for (int64_t r = 0; r < n; ++r) m = std::max(m, len[r]);
  return m;
}

void FillElements(void* dst, const void* elem, size_t e, size_t n) {
  // One loop per element size: a memcpy per element of a size known only at run time was
  // a library call per padding position (most of a pad_to_batch batch's time).
  auto fill = [&](auto zero) {
    decltype(zero) v;
    std::memcpy(&v, elem, sizeof v);
    std::fill_n(static_cast<decltype(zero)*>(dst), n, v);
  };
  switch (e) {
    case 1: fill(uint8_t{0}); return;
    case 2: fill(uint16_t{0}); return;
    case 4: fill(uint32_t{0}); return;
    case 8: fill(uint64_t{0}); return;
  }
  for (size_t j = 0; j < n; ++j) std::memcpy(static_cast<uint8_t*>(dst) + j * e, elem, e);
}

void ShrinkRows(Tensor& t, int64_t L, int64_t Lb, const int64_t* len, const void* pad) {
  const size_t e = TensorTypeSize(t.type);
  const int64_t n = t.shape[0];
  uint8_t* d = t.data.data();
  // Row r moves from r * L to r * Lb <= r * L: in increasing r nothing unread is overwritten.
  for (int64_t r = 0; r < n; ++r) {
    uint8_t* dst = d + static_cast<size_t>(r * Lb) * e;
    const int64_t keep = std::min(len[r], Lb);
    if (r > 0) std::memmove(dst, d + static_cast<size_t>(r * L) * e, static_cast<size_t>(keep) * e);
    FillElements(dst + static_cast<size_t>(keep) * e, pad, e, static_cast<size_t>(Lb - keep));
  }
  t.shape[1] = Lb;
  t.data.resize(static_cast<size_t>(n * Lb) * e);
}

struct Pipeline::Impl {
  GeneMap map;
  PipelineSpec spec;
  bool needs_counts = false;
  bool has_target = false;
};

Pipeline::Pipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Pipeline::~Pipeline() = default;
const GeneMap& Pipeline::gene_map() const { return impl_->map; }
const PipelineSpec& Pipeline::spec() const { return impl_->spec; }

Result<std::shared_ptr<const Pipeline>> Pipeline::Make(GeneMap map, PipelineSpec spec) {
  auto impl = std::make_unique<Impl>();
  int rda = 0;
  bool thins = false;
  for (const Step& s : spec.steps) {
    if (auto* t = std::get_if<Thin>(&s)) {
      thins = true;
      if (!(t->fraction >= 0 && t->fraction <= 1))
        return Status::Invalid("Thin: fraction must be in [0, 1], got " + std::to_string(t->fraction));
      if (t->target_total < 0) return Status::Invalid("Thin: target_total must be >= 0");
    } else if (auto* r = std::get_if<RdaDownsample>(&s)) {
      ++rda;
      thins = true;
      if (!(r->probability >= 0 && r->probability <= 1))
        return Status::Invalid("RdaDownsample: probability must be in [0, 1]");
      if (r->beta_a < 1 || r->beta_b < 1 || r->beta_a + r->beta_b > 65)
        return Status::Invalid("RdaDownsample: beta_a, beta_b must be integers >= 1 (a + b <= 65)");
    } else if (auto* n = std::get_if<NormalizeTotal>(&s)) {
      if (!(n->target > 0)) return Status::Invalid("NormalizeTotal: target must be > 0");
    } else if (auto* c = std::get_if<Clip>(&s)) {
      if (!(c->min <= c->max)) return Status::Invalid("Clip: min must be <= max");
    }
  }
  if (rda > 1) return Status::Invalid("a pipeline holds at most one RdaDownsample step");
  impl->needs_counts = thins;
  impl->has_target = rda == 1;
  if (auto* d = std::get_if<DenseOutput>(&spec.output)) {
    if (d->mask && !(d->value_mask.nonzero >= 0 && d->value_mask.nonzero <= 1 &&
                     d->value_mask.zero >= 0 && d->value_mask.zero <= 1))
      return Status::Invalid("ValueMask: fractions must be in [0, 1]");
  } else if (auto* r = std::get_if<RankOutput>(&spec.output)) {
    if (r->version != 1 && r->version != 2) return Status::Invalid("RankOutput: version must be 1 or 2");
    if (static_cast<int64_t>(r->medians.size()) != map.vocab_size)
      return Status::Invalid("RankOutput: one median per vocabulary entry (" +
                             std::to_string(map.vocab_size) + "), got " +
                             std::to_string(r->medians.size()));
    if (r->max_tokens < 0 || (r->max_tokens > 0 && r->max_tokens < (r->version == 1 ? 1 : 3)))
      return Status::Invalid("RankOutput: max_tokens too small");
    if (r->n_counts_all_genes && thins)
      return Status::Invalid("RankOutput: n_counts over all genes cannot follow thinning "
                             "(only the vocabulary genes are thinned); use n_counts='mapped'");
    if (r->first_gene_id < 0 || r->first_gene_id >= map.vocab_size)
      return Status::Invalid("RankOutput: first_gene_id outside the vocabulary");
    if (!(r->mlm_probability >= 0 && r->mlm_probability <= 1 && r->mask_fraction >= 0 &&
          r->random_fraction >= 0 && r->mask_fraction + r->random_fraction <= 1))
      return Status::Invalid("RankOutput: MLM fractions must be probabilities summing to <= 1");
  } else if (auto* b = std::get_if<BinnedOutput>(&spec.output)) {
    if (b->n_bins < 3) return Status::Invalid("BinnedOutput: n_bins must be >= 3");
    if (b->max_length < 2) return Status::Invalid("BinnedOutput: max_length must be >= 2");
    if (!(b->mask_ratio >= 0 && b->mask_ratio <= 1))
      return Status::Invalid("BinnedOutput: mask_ratio must be in [0, 1]");
  }
  impl->map = std::move(map);
  impl->spec = std::move(spec);
  return std::shared_ptr<const Pipeline>(new Pipeline(std::move(impl)));
}

namespace {

std::string FormatValue(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
  return buf;
}

}  // namespace

Status Pipeline::Run(const CsrMatrix& X, const FetchCells& cells, Outputs& out) const {
  return Run(X, 0, X.n_rows, cells, out);
}

Status Pipeline::Run(const CsrMatrix& X, int64_t row_begin, int64_t row_end, const FetchCells& cells,
                     Outputs& out) const {
  const Impl& m = *impl_;
  if (row_begin < 0 || row_end < row_begin || row_end > X.n_rows)
    return Status::Invalid("Pipeline::Run: rows " + std::to_string(row_begin) + " to " + std::to_string(row_end) +
                           " outside the fetch's " + std::to_string(X.n_rows));
  const int64_t n = row_end - row_begin;
  if (static_cast<int64_t>(cells.rows.size()) != n || static_cast<int64_t>(cells.keys.size()) != n)
    return Status::Invalid("Pipeline::Run: one row id and one key per row of the fetch");
  if (X.n_cols != m.map.n_cols)
    return Status::Invalid("Pipeline::Run: the fetch has " + std::to_string(X.n_cols) +
                           " columns, the gene map " + std::to_string(m.map.n_cols));
  StageContext sctx{&m.map, cells.seed, cells.epoch, m.has_target};
  std::visit(
      [&](const auto& o) {
        using T = std::decay_t<decltype(o)>;
        if constexpr (std::is_same_v<T, DenseOutput>) LayoutDense(o, sctx, n, out);
        if constexpr (std::is_same_v<T, RankOutput>) LayoutRank(o, sctx, n, out);
        if constexpr (std::is_same_v<T, BinnedOutput>) LayoutBinned(o, sctx, n, out);
      },
      m.spec.output);

  CellState c;  // its buffers are reused by every cell of the batch
  for (int64_t i = 0; i < n; ++i) {
    c.row = cells.rows[static_cast<size_t>(i)];
    c.key = cells.keys[static_cast<size_t>(i)];
    c.file = m.map.FileOf(c.row);
    const int32_t* to_vocab = m.map.ColumnToVocab(c.file).data();
    // Straight into the cell's arrays; a map that reorders or merges genes (every real
    // vocabulary on real files) then needs the vocabulary-order pass below, one that keeps
    // the file's order (a vocabulary cut from the file's own genes) does not.
    // Locals, not the cell's members, in the loop: stores to c.all_total could alias the
    // values written through c.x, so the compiler kept the running sum in memory (its
    // load-add-store chain was most of the gather's time). Sums run in the same order, both
    // in this one pass: each is a chain of dependent adds, and two chains in one loop
    // overlap where a second loop over c.x ran after the first.
    const int64_t o_begin = X.indptr[row_begin + i], o_end = X.indptr[row_begin + i + 1];
    c.idx.resize(static_cast<size_t>(o_end - o_begin));
    c.x.resize(static_cast<size_t>(o_end - o_begin));
    int32_t* idx = c.idx.data();
    double* xs = c.x.data();
    const float* data = X.data.data();
    const int32_t* indices = X.indices.data();
    size_t kept = 0;
    double all_total = 0, raw_total = 0;  // two sums, one pass: each a chain of its own
    bool ordered = true;  // ids strictly ascending: sorted, no two file genes on one id
    int32_t last = -1;
    for (int64_t o = o_begin; o < o_end; ++o) {
      const float v = data[o];
      const int32_t col = indices[o];
      if (m.needs_counts && !(v >= 0 && v == std::floor(v))) {
        return Status::Invalid(
            m.map.files[c.file] + ": X row " + std::to_string(c.row - m.map.file_offsets[c.file]) +
            ", gene '" + m.map.col_names[static_cast<size_t>(col)] + "' holds " + FormatValue(v) +
            ", expected a non-negative integer count: binomial thinning and read-depth "
            "downsampling need raw counts (open the counts layer, e.g. layer='counts')");
      }
      all_total += v;
      const int32_t g = to_vocab[col];
      if (g < 0) continue;
      ordered = ordered && g > last;
      last = std::max(last, g);
      raw_total += v;  // the kept values in file order, whatever the map's order
      idx[kept] = g;
      xs[kept++] = v;
    }
    c.idx.resize(kept);
    c.x.resize(kept);
    c.all_total = all_total;
    // Several file genes on one vocabulary gene are summed there.
    if (!ordered) c.scratch.vocab_order.Sort(m.map.vocab_size, c.idx, c.x);
    c.raw_total = raw_total;
    c.total = c.raw_total;
    c.has_target = false;
    c.downsampled = false;
    c.target.clear();
    uint64_t step_index = 0;
    for (const Step& s : m.spec.steps) {
      StepContext ctx{cells.seed, cells.epoch, step_index++};
      std::visit(
          [&](const auto& st) {
            using T = std::decay_t<decltype(st)>;
            if constexpr (std::is_same_v<T, Thin>) ApplyThin(st, ctx, c);
            if constexpr (std::is_same_v<T, RdaDownsample>) ApplyRda(st, ctx, c);
            if constexpr (std::is_same_v<T, NormalizeTotal>) ApplyNormalizeTotal(st, c);
            if constexpr (std::is_same_v<T, Log1p>) ApplyLog1p(c);
            if constexpr (std::is_same_v<T, Clip>) ApplyClip(st, c);
          },
          s);
    }
    std::visit(
        [&](const auto& o) {
          using T = std::decay_t<decltype(o)>;
          if constexpr (std::is_same_v<T, DenseOutput>) WriteDense(o, sctx, c, i, out);
          if constexpr (std::is_same_v<T, RankOutput>) WriteRank(o, sctx, c, i, out);
          if constexpr (std::is_same_v<T, BinnedOutput>) WriteBinned(o, sctx, c, i, out);
        },
        m.spec.output);
  }
  if (const auto* r = std::get_if<RankOutput>(&m.spec.output)) FinishRank(*r, sctx, c, n, out);
  if (const auto* b = std::get_if<BinnedOutput>(&m.spec.output)) FinishBinned(*b, sctx, n, out);
  return Status::OK();
}

}  // namespace cellfeed::transform
