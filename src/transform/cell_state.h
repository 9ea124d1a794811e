// One cell on its way through a Pipeline: its values on the vocabulary (sorted ids,
// duplicates summed), the raw copy kept as the training target, and its totals. Steps
// change the values in place; output stages read them.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "cellfeed/status.h"
#include "cellfeed/transform.h"
#include "transform/radix_sort.h"
#include "transform/vocab_order.h"

namespace cellfeed::transform {

// log1p by a direct-mapped memo keyed by the input's bits. A cell's normalized counts take
// few distinct values (k * target / total for small integers k), so most calls become a
// lookup (libm's log1p was 14% of a dense preset); results are log1p's own, bit for bit.
class Log1pMemo {
 public:
  Log1pMemo() {
    for (uint64_t& k : key_) k = kEmpty;
  }
  double operator()(double x) {
    uint64_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    if (bits == kEmpty) return std::log1p(x);
    const size_t slot = static_cast<size_t>((bits * 0x9E3779B97F4A7C15ULL) >> 56);
    if (key_[slot] != bits) {
      key_[slot] = bits;
      value_[slot] = std::log1p(x);
    }
    return value_[slot];
  }

 private:
  static constexpr uint64_t kEmpty = 0x7FF8DEADBEEF0001ULL;  // a NaN no step produces
  uint64_t key_[256];
  double value_[256];
};

// A cell's distinct nonzero values with their counts, in an open-addressed table keyed by
// the values' bits, when there are at most kMax of them (else Collect says false): the
// elements of the sorted multiset from the sorted distinct values and their running
// counts (for its quantiles), and per value how many edges are <= and < it (digitize).
class DistinctValues {
 public:
  static constexpr size_t kMax = 256;
  bool Collect(const std::vector<double>& x);
  uint64_t total() const { return total_; }  // nonzero values collected
  double At(size_t pos) const;                // the pos-th smallest of them
  void CountEdges(const std::vector<double>& edges);
  void EdgeCounts(double x, int64_t& le, int64_t& lt) const {
    const Slot& s = slots_[Find(Bits(x))];
    le = s.le;
    lt = s.lt;
  }

 private:
  static constexpr size_t kSlots = 1024;  // a power of two, 4x kMax
  struct Slot {
    uint64_t bits;
    uint32_t count, stamp;
    int32_t le, lt;
  };
  static uint64_t Bits(double x) {
    uint64_t b;
    std::memcpy(&b, &x, sizeof b);
    return b;
  }
  size_t Find(uint64_t bits) const {  // the slot holding bits (it is there)
    size_t i = static_cast<size_t>((bits * 0x9E3779B97F4A7C15ULL) >> 54);
    while (slots_[i].stamp != stamp_ || slots_[i].bits != bits) i = (i + 1) & (kSlots - 1);
    return i;
  }
  Slot slots_[kSlots] = {};
  uint32_t stamp_ = 0;          // slots of earlier cells hold older stamps: empty
  size_t used_[kMax];           // slots in use, then sorted by value
  size_t n_ = 0;
  uint64_t total_ = 0;          // nonzero values counted
  uint64_t cum_[kMax];          // values <= the i-th smallest distinct value
};

struct CellState {
  int64_t row = 0;        // global row id
  size_t file = 0;
  uint64_t key = 0;       // the cell's randomness key
  std::vector<int32_t> idx;     // vocabulary ids, ascending, unique
  std::vector<double> x;        // values (zeros may appear after thinning)
  std::vector<double> target;   // raw values, same ids, when has_target
  bool has_target = false;
  bool downsampled = false;
  double raw_total = 0;   // counts over the vocabulary genes, as read
  double total = 0;       // counts over the vocabulary genes, after thinning
  double all_total = 0;   // counts over every collection column of the row, as read

  // Output stages' buffers, reused from cell to cell of one Run (one batch on one
  // thread). Not thread_local: in a shared library every access to one is a call to
  // __tls_get_addr, and the compiler did not hoist them out of the loops (8% of a dense
  // preset's time).
  struct Scratch {
    VocabOrder vocab_order;                         // a map that reorders: the gather's sort
    std::vector<float> dense;                       // a dense row, streamed out when done
    std::vector<uint8_t> mask_row;                  // its value mask
    std::vector<uint16_t> bf16_row;                 // a bfloat16 row
    std::vector<int32_t> masked;                    // value-masked positions
    std::vector<KeyedId> ranked, ranked_tmp;        // rank tokens
    std::vector<uint32_t> ranked_count;             // their sort's buckets
    struct RankRows {  // pad_to_batch: every cell's kept gene ids, until the batch's width is known
      std::vector<int32_t> genes;
      std::vector<size_t> begin;  // cell i's genes start at genes[begin[i]]
      std::vector<uint64_t> keys;
    } rank_rows;
    std::vector<double> sorted, edges;              // value bins
    std::vector<int32_t> genes, pos;
    std::vector<float> bins;
    Log1pMemo log1p;
    DistinctValues distinct;  // value bins
  };
  mutable Scratch scratch;
};

// What a step needs besides the cell.
struct StepContext {
  uint64_t seed = 0;
  int64_t epoch = 0;
  uint64_t step_index = 0;
};

void ApplyThin(const Thin& s, const StepContext& ctx, CellState& c);
void ApplyRda(const RdaDownsample& s, const StepContext& ctx, CellState& c);
void ApplyNormalizeTotal(const NormalizeTotal& s, CellState& c);
void ApplyLog1p(CellState& c);
void ApplyClip(const Clip& s, CellState& c);

// Output stages: Layout sizes the tensors for n rows (reusing their buffers), Write fills
// row i. `present` is the cell's file's presence mask over the vocabulary.
struct StageContext {
  const GeneMap* map = nullptr;
  uint64_t seed = 0;
  int64_t epoch = 0;
  bool has_target = false;
};

void LayoutDense(const DenseOutput& o, const StageContext& ctx, int64_t n, Outputs& out);
void WriteDense(const DenseOutput& o, const StageContext& ctx, const CellState& c, int64_t i,
                Outputs& out);
void LayoutRank(const RankOutput& o, const StageContext& ctx, int64_t n, Outputs& out);
void WriteRank(const RankOutput& o, const StageContext& ctx, const CellState& c, int64_t i,
               Outputs& out);
void LayoutBinned(const BinnedOutput& o, const StageContext& ctx, int64_t n, Outputs& out);
void WriteBinned(const BinnedOutput& o, const StageContext& ctx, const CellState& c, int64_t i,
                 Outputs& out);

// pad_to_batch, once every cell is done: FinishRank writes the rows Write kept in c's
// scratch at the batch's longest; FinishBinned moves the rows Write put at the full
// length's stride (without their padding) to the batch's longest and pads them there.
void FinishRank(const RankOutput& o, const StageContext& ctx, const CellState& c, int64_t n,
                Outputs& out);
void FinishBinned(const BinnedOutput& o, const StageContext& ctx, int64_t n, Outputs& out);

// Geneformer-style masked-token labels over tokens [begin, end) of one row (tokens.h).
void MaskTokens(const RankOutput& o, int64_t vocab_size, uint64_t stream_key, int64_t* ids,
                int64_t* labels, int64_t begin, int64_t end);

// Sets a tensor's name, type and shape, reusing its buffer.
void ShapeTensor(Tensor& t, const char* name, TensorType type, std::vector<int64_t> shape);

// The longest of n row lengths, at least 1 (a batch of empty cells keeps one column).
int64_t LongestRow(const int64_t* len, int64_t n);

// Fills n elements of e bytes at dst (aligned to e) with copies of *elem.
void FillElements(void* dst, const void* elem, size_t e, size_t n);

// Re-strides a [n, L] tensor whose row r holds len[r] valid elements to [n, Lb] (Lb <= L),
// filling positions len[r]..Lb-1 with *pad (one element of the tensor's type).
void ShrinkRows(Tensor& t, int64_t L, int64_t Lb, const int64_t* len, const void* pad);

}  // namespace cellfeed::transform
