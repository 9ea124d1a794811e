// The epoch plan: which cells each rank reads, in which fetches and batches.
//
// A pure function of (file sizes, SamplingConfig, epoch, rank, world_size): no I/O, no
// clocks, no thread counts. Algorithms are those of the scDataset paper (block sampling +
// batched fetching), with the production fixes listed in docs/SAMPLING.md:
//  1. Cells are split into blocks of `block_size` consecutive rows; blocks never straddle
//     two files (the last block of a file may be shorter).
//  2. With shuffle, the full blocks come in a seeded pseudo-random order (a Feistel
//     permutation computed on demand, O(1) memory), followed by the short last blocks
//     of the files in a seeded order of their own, so every full block starts at a
//     multiple of block_size in the sequence (as in the paper, where only one block is
//     short). Without shuffle, blocks stay in file order (streaming).
//  3. The resulting cell sequence is cut into world_size equal contiguous slices, one per
//     rank; the remainder (< world_size cells) is dropped or padded by wrap-around.
//  4. A rank's slice is cut into fetches of batch_size * fetch_factor cells. Each fetch's
//     rows are sorted (forward reads), shuffled in memory with a seed derived from
//     (seed, epoch, fetch), and cut into batches of batch_size.
//  5. drop_last: the rank's slice is truncated to a multiple of batch_size first.
// The plan is random access: fetch k can be computed without computing fetches 0..k-1,
// which makes resume after k batches O(1).
//
// Variable blocks (`block_starts`, e.g. one block per storage chunk, so that a block
// costs one chunk decode and wastes none): blocks are the given row ranges instead of
// runs of block_size rows, permuted the same way; the plan then keeps each block's end
// in the permuted order (8 bytes per block) to find positions.
//
// Selections (a declared corpus, include/cellfeed/selection.h): the epoch's cells are
// the lanes of an EpochSelection instead of every row. Each lane is planned as above over
// its own rows (blocks are runs of consecutive selected rows within one file; the
// virtual "files" are the lane's rows in each file), with its own block order. The lanes
// are interleaved in windows of about batch_size cells: window w holds blocks
// [floor(w*B/W), floor((w+1)*B/W)) of a lane with B blocks (W windows), so every stretch
// of the epoch holds each lane in proportion to its size, to within one block per window.
// Ranks, fetches, batches, padding and drop_last then apply to that sequence unchanged.
//
// Elastic resume (`earlier`, docs/SAMPLING.md): a pass over an epoch that continues
// passes interrupted mid-epoch, possibly at other world sizes and batch sizes. Its
// sequence is the epoch's sequence less every cell those passes consumed, in the epoch's
// order (a set of intervals, recomputed from the passes' small descriptions: nothing per
// cell is saved). Ranks, fetches and batches then apply to that sequence as above.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "cellfeed/selection.h"
#include "cellfeed/status.h"

namespace cellfeed {

enum class RemainderPolicy : uint8_t {
  kPad,   // every cell appears; up to world_size-1 cells appear twice (wrap-around)
  kDrop,  // up to world_size-1 cells (the tail of the shuffled sequence) are not seen
};

struct SamplingConfig {
  int64_t batch_size = 64;
  int64_t block_size = 4;    // 1 = full random sampling
  // One block per storage chunk of X instead of block_size rows (the caller passes the
  // collection's Collection::ChunkBlockStarts to EpochPlan::Make): every block read
  // decodes one chunk and uses all of it. Blocks are then ~chunk-sized, so diversity
  // needs a large fetch_factor.
  bool chunk_blocks = false;
  int64_t fetch_factor = 16;  // batches per fetch
  bool shuffle = true;       // false = streaming, in file order
  bool drop_last = false;
  uint64_t seed = 0;
  RemainderPolicy remainder = RemainderPolicy::kPad;
};

// A pass over an epoch that was interrupted (elastic resume): how it was sharded and
// which batches each of its ranks had consumed. Batch b of rank r was consumed iff
// b < next[r][(b / fetch_factor) % next[r].size()]: one entry per DataLoader worker
// (worker i yields fetches i, i+k, ...; one entry = batches [0, next) consumed), and one
// list per rank, or a single list for every rank (DDP ranks move in lockstep).
struct InterruptedPass {
  int world_size = 1;
  int64_t batch_size = 64;
  int64_t fetch_factor = 16;
  std::vector<std::vector<int64_t>> next;
  bool operator==(const InterruptedPass&) const = default;
};

// One fetch: the rows to read (sorted ascending; duplicates only from padding), and how
// they are dealt into batches after the in-memory shuffle.
struct Fetch {
  int64_t index = 0;               // position of this fetch in the rank's epoch
  std::vector<int64_t> rows;       // global row ids, ascending: the read order
  // batches[j] lists positions into `rows`, in the order the batch yields its cells.
  std::vector<std::vector<int32_t>> batches;
  // With a selection: the lane of each entry of `rows` (EpochSelection::lanes index).
  std::vector<int32_t> lanes;
};

class EpochPlan {
 public:
  // file_sizes: rows in each file of the collection, in collection order.
  // block_starts: empty for blocks of config.block_size rows; otherwise the first global
  // row of every block, ascending from 0, including every file's first row.
  // selection: the lanes of this epoch (nullptr = every row once).
  static Result<EpochPlan> Make(std::vector<int64_t> file_sizes, const SamplingConfig& config,
                                int64_t epoch, int rank, int world_size,
                                std::vector<int64_t> block_starts = {},
                                std::shared_ptr<const EpochSelection> selection = nullptr,
                                const std::vector<InterruptedPass>& earlier = {});

  int64_t num_batches() const;  // batches this rank yields this epoch (equal on all ranks)
  int64_t num_fetches() const;
  int64_t num_cells() const;    // cells this rank yields this epoch (padding included)
  Fetch GetFetch(int64_t k) const;  // 0 <= k < num_fetches()
  // The fetch holding batch `b` of the epoch, and b's position inside it.
  int64_t FetchOfBatch(int64_t b) const;
  int64_t BatchInFetch(int64_t b) const;

  const SamplingConfig& config() const { return config_; }
  // Cells of this pass's sequence (all ranks, before padding): the epoch's cells, or
  // those the `earlier` passes left.
  int64_t sequence_cells() const { return pass_cells_; }
  // With a selection: cells of each lane that this rank yields this epoch.
  std::vector<int64_t> LaneCellsOfRank() const;

 private:
  EpochPlan() = default;
  // Implementation state; its meaning is private to src/plan/epoch_plan.cc.
  void AppendSequence(int64_t pos, int64_t len, std::vector<int64_t>* out,
                      std::vector<int32_t>* lanes = nullptr) const;
  // Elastic resume: this pass's positions [pos, pos + len) as epoch sequence intervals.
  template <typename Fn>
  void ForEachEpochSpan(int64_t pos, int64_t len, Fn&& fn) const;
  void Shard(int rank, int world_size);
  // The in-memory shuffle of the cells at pass positions [start, start + len): offsets
  // into that window, in the order the batches deal them.
  std::vector<int32_t> YieldOrder(int64_t start, int64_t len,
                                  const std::vector<int32_t>& lanes) const;
  // Pass positions (mod sequence_cells) that `rank` consumed, per InterruptedPass::next.
  Status AppendConsumed(int rank, const std::vector<int64_t>& next,
                        std::vector<std::pair<int64_t, int64_t>>* out) const;
  Status Resume(const std::vector<InterruptedPass>& earlier);
  void AppendRange(int64_t pos, int64_t len, std::vector<int64_t>* out) const;
  void AppendVariableBlocks(int64_t pos, int64_t len, std::vector<int64_t>* out) const;
  Status SetBlockStarts(std::vector<int64_t> starts);
  // Selections: the lane sequences and their interleaving.
  Status SetSelection(std::shared_ptr<const EpochSelection> selection,
                      const std::vector<int64_t>& block_starts);
  int64_t NumBlocks() const;                 // blocks of this (lane) plan's sequence
  int64_t CellsBeforeBlock(int64_t j) const;  // sequence position where block j starts
  int64_t LaneBlocksBefore(size_t lane, int64_t window) const;
  int64_t WindowStart(int64_t window) const;  // sequence position of a window
  void AppendLanes(int64_t pos, int64_t len, std::vector<int64_t>* out,
                   std::vector<int32_t>* lanes) const;
  // Cells of each lane at sequence positions [0, pos), 0 <= pos <= total_cells_.
  std::vector<int64_t> LaneCellsBefore(int64_t pos) const;

  SamplingConfig config_;
  int64_t epoch_ = 0;
  int rank_ = 0;
  int world_size_ = 1;
  int64_t block_size_ = 1;
  int64_t total_cells_ = 0;     // n: rows in all files
  int64_t num_full_blocks_ = 0;
  uint64_t block_key_ = 0;      // key of the full-block permutation (shuffle only)
  int64_t pass_ = 0;            // earlier (interrupted) passes over this epoch
  int64_t pass_cells_ = 0;      // cells of this pass's sequence (all ranks)
  int64_t slice_ = 0;           // cells per rank slice, before drop_last
  // Elastic resume: this pass's sequence as intervals [begin, end) of the epoch's
  // sequence, ascending, and the pass cells before each; empty = the whole epoch.
  std::vector<std::pair<int64_t, int64_t>> remain_;
  std::vector<int64_t> remain_before_;
  int64_t rank_begin_ = 0;      // start of this rank's slice in the shuffled cell sequence
  int64_t rank_cells_ = 0;      // cells this rank yields (after drop_last)
  std::vector<int64_t> file_sizes_;
  std::vector<int64_t> file_offsets_;          // size F+1: first global row of each file
  std::vector<int64_t> full_starts_per_file_;  // size F+1: first full-block id of each file
  // Short blocks (file tails, < block_size_ rows), in their shuffled order after all full
  // blocks: the file of each, and the sequence position just past it.
  std::vector<int64_t> tail_files_;
  std::vector<int64_t> tail_ends_;
  // Variable blocks: their first rows, and the sequence position past each slot.
  std::vector<int64_t> block_starts_;
  std::vector<int64_t> slot_ends_;
  // Selections: each lane's own plan over its rows, its blocks, and the windows.
  std::shared_ptr<const EpochSelection> selection_;
  std::vector<std::shared_ptr<const EpochPlan>> lane_plans_;
  std::vector<int64_t> lane_blocks_;
  int64_t num_windows_ = 0;
};

}  // namespace cellfeed
