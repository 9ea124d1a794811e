// EpochPlan: block sampling + batched fetching (scDataset), made file-aware, shardable
// and random access. See include/cellfeed/plan.h and docs/SAMPLING.md.
//
// The shuffled cell sequence of an epoch is, with shuffle:
//   [full blocks, in the order of a seeded BlockPermutation] [short blocks, shuffled]
// where a full block has exactly block_size rows of one file and a short block is the tail
// (size % block_size rows) of a file. Keeping the short blocks together at the end keeps
// every full block aligned to multiples of block_size in the sequence, so a fetch of
// batch_size * fetch_factor cells (a multiple of block_size in the usual configurations)
// holds whole blocks, exactly as in the paper's algorithm; scattering up to one short
// block per file through the sequence would shift fetch boundaries off block boundaries,
// give each fetch one extra (partial) block, and raise the entropy above Table 2 (by 0.07
// bits at b=32, f=4). Position p < num_full_blocks * block_size is row (p % block_size) of
// the full block at slot p / block_size: O(1), nothing proportional to the number of blocks
// is stored. Without shuffle the sequence is simply the rows in order.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "cellfeed/plan.h"
#include "plan/block_permutation.h"
#include "plan/rng.h"

namespace cellfeed {

namespace {

using plan_internal::BlockPermutation;
using plan_internal::FisherYates;
using plan_internal::MixCombine;
using plan_internal::Xoshiro256;

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

int64_t CeilDiv(int64_t a, int64_t b) { return a / b + (a % b != 0 ? 1 : 0); }

uint64_t BlockOrderKey(uint64_t seed, int64_t epoch) {
  return MixCombine(MixCombine(seed, plan_internal::kTagBlockOrder), static_cast<uint64_t>(epoch));
}

uint64_t TailOrderSeed(uint64_t seed, int64_t epoch) {
  return MixCombine(MixCombine(seed, plan_internal::kTagTailOrder), static_cast<uint64_t>(epoch));
}

uint64_t FetchShuffleSeed(uint64_t seed, int64_t epoch, int64_t sequence_start) {
  return MixCombine(
      MixCombine(MixCombine(seed, plan_internal::kTagFetchShuffle), static_cast<uint64_t>(epoch)),
      static_cast<uint64_t>(sequence_start));
}

}  // namespace

Result<EpochPlan> EpochPlan::Make(std::vector<int64_t> file_sizes, const SamplingConfig& config,
                                  int64_t epoch, int rank, int world_size,
                                  std::vector<int64_t> block_starts,
                                  std::shared_ptr<const EpochSelection> selection,
                                  const std::vector<InterruptedPass>& earlier) {
  if (config.batch_size < 1) {
    return Status::Invalid("sampling: batch_size must be >= 1, got " +
                           std::to_string(config.batch_size));
  }
  if (config.block_size < 1) {
    return Status::Invalid("sampling: block_size must be >= 1, got " +
                           std::to_string(config.block_size));
  }
  if (config.fetch_factor < 1) {
    return Status::Invalid("sampling: fetch_factor must be >= 1, got " +
                           std::to_string(config.fetch_factor));
  }
  if (config.batch_size > std::numeric_limits<int32_t>::max() / config.fetch_factor) {
    return Status::Invalid("sampling: batch_size * fetch_factor must be < 2^31, got " +
                           std::to_string(config.batch_size) + " * " +
                           std::to_string(config.fetch_factor));
  }
  if (config.remainder != RemainderPolicy::kPad && config.remainder != RemainderPolicy::kDrop) {
    return Status::Invalid("sampling: unknown remainder policy");
  }
  if (world_size < 1) {
    return Status::Invalid("sampling: world_size must be >= 1, got " + std::to_string(world_size));
  }
  if (rank < 0 || rank >= world_size) {
    return Status::Invalid("sampling: rank must be in [0, world_size=" +
                           std::to_string(world_size) + "), got " + std::to_string(rank));
  }

  EpochPlan p;
  p.config_ = config;
  p.epoch_ = epoch;
  p.rank_ = rank;
  p.world_size_ = world_size;

  // Files: offsets, full blocks, tails.
  const std::size_t num_files = file_sizes.size();
  const int64_t b = config.block_size;
  p.block_size_ = b;
  int64_t total = 0;
  int64_t full_blocks = 0;
  p.file_offsets_.resize(num_files + 1);
  p.full_starts_per_file_.resize(num_files + 1);
  for (std::size_t f = 0; f < num_files; ++f) {
    const int64_t s = file_sizes[f];
    if (s < 0) {
      return Status::Invalid("sampling: file " + std::to_string(f) + " has a negative size (" +
                             std::to_string(s) + ")");
    }
    if (s > kInt64Max - total) return Status::Invalid("sampling: total number of rows overflows");
    p.file_offsets_[f] = total;
    p.full_starts_per_file_[f] = full_blocks;
    total += s;
    full_blocks += s / b;
    if (s % b != 0) p.tail_files_.push_back(static_cast<int64_t>(f));
  }
  p.file_offsets_[num_files] = total;
  p.full_starts_per_file_[num_files] = full_blocks;
  p.total_cells_ = total;
  p.num_full_blocks_ = full_blocks;

  if (config.shuffle) {
    p.block_key_ = BlockOrderKey(config.seed, epoch);
    Xoshiro256 rng(TailOrderSeed(config.seed, epoch));
    FisherYates(p.tail_files_, rng);
  }
  int64_t end = full_blocks * b;
  p.tail_ends_.reserve(p.tail_files_.size());
  for (int64_t f : p.tail_files_) {
    end += file_sizes[static_cast<std::size_t>(f)] % b;
    p.tail_ends_.push_back(end);
  }

  p.file_sizes_ = std::move(file_sizes);
  if (config.chunk_blocks && block_starts.empty() && total > 0) {
    return Status::Invalid("sampling: chunk_blocks needs the collection's chunk block starts");
  }
  if (selection != nullptr) {
    // The lanes' windows follow the batch size of the epoch's first pass, so that
    // every pass of an epoch cuts the same sequence.
    if (!earlier.empty()) p.config_.batch_size = std::max<int64_t>(1, earlier.front().batch_size);
    CF_RETURN_IF_ERROR(p.SetSelection(std::move(selection), block_starts));
    p.config_ = config;
    total = p.total_cells_;
    block_starts.clear();  // used by the lanes
  }
  if (!block_starts.empty() && total > 0) {
    CF_RETURN_IF_ERROR(p.SetBlockStarts(std::move(block_starts)));
  }
  p.pass_cells_ = total;
  if (!earlier.empty()) CF_RETURN_IF_ERROR(p.Resume(earlier));
  p.Shard(rank, world_size);
  return p;
}

// This rank's contiguous slice of the pass's sequence.
void EpochPlan::Shard(int rank, int world_size) {
  rank_ = rank;
  world_size_ = world_size;
  slice_ = 0;
  if (pass_cells_ > 0) {
    slice_ = config_.remainder == RemainderPolicy::kPad ? CeilDiv(pass_cells_, world_size)
                                                        : pass_cells_ / world_size;
  }
  rank_begin_ = static_cast<int64_t>(rank) * slice_;
  rank_cells_ = config_.drop_last ? slice_ / config_.batch_size * config_.batch_size : slice_;
}

// --- Elastic resume: the cells interrupted passes left, as intervals ---------------------

template <typename Fn>
void EpochPlan::ForEachEpochSpan(int64_t pos, int64_t len, Fn&& fn) const {
  if (pass_ == 0) {
    if (len > 0) fn(pos, len);
    return;
  }
  std::size_t k =
      static_cast<std::size_t>(std::upper_bound(remain_before_.begin(), remain_before_.end(), pos) -
                               remain_before_.begin() - 1);
  while (len > 0) {
    const int64_t offset = pos - remain_before_[k];
    const int64_t take = std::min(len, remain_[k].second - remain_[k].first - offset);
    fn(remain_[k].first + offset, take);
    pos += take;
    len -= take;
    ++k;
  }
}

// Each earlier pass in turn: shard the cells left by the passes before it as that pass
// did, collect what its ranks consumed, keep the rest (in the epoch's order). A pass's
// padding (wrapped positions) maps back onto the cells it repeats, so a cell consumed
// as padding is not owed again. Cost: the consumed fetches' count, plus a shuffle of
// each partly consumed fetch; nothing proportional to the epoch's cells.
Status EpochPlan::Resume(const std::vector<InterruptedPass>& earlier) {
  const SamplingConfig config = config_;
  for (std::size_t i = 0; i < earlier.size(); ++i) {
    const InterruptedPass& e = earlier[i];
    const std::string which = "resume: interrupted pass " + std::to_string(i) + ": ";
    if (e.world_size < 1) return Status::Invalid(which + "world_size must be >= 1");
    if (e.batch_size < 1 || e.fetch_factor < 1 ||
        e.batch_size > std::numeric_limits<int32_t>::max() / e.fetch_factor) {
      return Status::Invalid(which +
                             "batch_size and fetch_factor must be >= 1, their product < 2^31");
    }
    if (e.next.size() != 1 && e.next.size() != static_cast<std::size_t>(e.world_size)) {
      return Status::Invalid(
          which + "consumed batches are given for " + std::to_string(e.next.size()) +
          " ranks; expected 1 (every rank alike) or " + std::to_string(e.world_size));
    }
    config_.batch_size = e.batch_size;
    config_.fetch_factor = e.fetch_factor;
    pass_ = static_cast<int64_t>(i);
    Shard(0, e.world_size);
    std::vector<std::pair<int64_t, int64_t>> used;
    for (int r = 0; r < e.world_size; ++r) {
      const auto& next = e.next[e.next.size() == 1 ? 0 : static_cast<std::size_t>(r)];
      Status st = AppendConsumed(r, next, &used);
      if (!st.ok())
        return Status::Invalid(which + "rank " + std::to_string(r) + ": " + st.message());
    }
    std::sort(used.begin(), used.end());
    std::vector<std::pair<int64_t, int64_t>> left;
    auto keep = [&](int64_t a, int64_t b) {
      ForEachEpochSpan(a, b - a, [&left](int64_t p, int64_t n) {
        if (!left.empty() && left.back().second == p) {
          left.back().second += n;
        } else {
          left.emplace_back(p, p + n);
        }
      });
    };
    int64_t at = 0;
    for (const auto& [a, b] : used) {
      if (a > at) keep(at, a);
      at = std::max(at, b);
    }
    if (at < pass_cells_) keep(at, pass_cells_);
    remain_ = std::move(left);
    remain_before_.assign(remain_.size(), 0);
    int64_t cells = 0;
    for (std::size_t k = 0; k < remain_.size(); ++k) {
      remain_before_[k] = cells;
      cells += remain_[k].second - remain_[k].first;
    }
    pass_cells_ = cells;
  }
  config_ = config;
  pass_ = static_cast<int64_t>(earlier.size());
  return Status::OK();
}

Status EpochPlan::AppendConsumed(int rank, const std::vector<int64_t>& next,
                                 std::vector<std::pair<int64_t, int64_t>>* out) const {
  if (next.empty()) return Status::Invalid("no consumed-batch entry");
  const int64_t bs = config_.batch_size, ff = config_.fetch_factor, fetch_cells = bs * ff;
  const int64_t workers = static_cast<int64_t>(next.size());
  const int64_t begin = static_cast<int64_t>(rank) * slice_;
  const int64_t L = pass_cells_;
  auto add = [&](int64_t a, int64_t b) {  // pass positions [a, b), b - a <= L
    const int64_t n = b - a;
    a %= L;
    b = a + n;
    if (b <= L) {
      out->emplace_back(a, b);
    } else {
      out->emplace_back(a, L);
      out->emplace_back(0, b - L);
    }
  };
  for (int64_t v = 0; v < workers; ++v) {
    const int64_t upto = next[static_cast<std::size_t>(v)];
    if (upto < 0 || upto > num_batches()) {
      return Status::Invalid("next batch " + std::to_string(upto) + " outside [0, " +
                             std::to_string(num_batches()) + "]");
    }
    for (int64_t k = v; k * ff < upto && k < num_fetches(); k += workers) {
      const int64_t start = k * fetch_cells;
      const int64_t len = std::min(fetch_cells, rank_cells_ - start);
      const int64_t cells = std::min(len, (upto - k * ff) * bs);
      if (cells == len) {
        add(begin + start, begin + start + len);
        continue;
      }
      std::vector<int64_t> rows;
      std::vector<int32_t> lanes;
      if (selection_ != nullptr) AppendSequence(begin + start, len, &rows, &lanes);
      std::vector<int32_t> order = YieldOrder(begin + start, len, lanes);
      order.resize(static_cast<std::size_t>(cells));
      std::sort(order.begin(), order.end());
      for (std::size_t j = 0; j < order.size();) {  // runs of consecutive positions
        std::size_t e = j + 1;
        while (e < order.size() && order[e] == order[e - 1] + 1) ++e;
        add(begin + start + order[j], begin + start + order[e - 1] + 1);
        j = e;
      }
    }
  }
  return Status::OK();
}

int64_t EpochPlan::num_cells() const { return rank_cells_; }

int64_t EpochPlan::num_batches() const { return CeilDiv(rank_cells_, config_.batch_size); }

int64_t EpochPlan::num_fetches() const {
  return CeilDiv(rank_cells_, config_.batch_size * config_.fetch_factor);
}

int64_t EpochPlan::FetchOfBatch(int64_t b) const { return b / config_.fetch_factor; }

int64_t EpochPlan::BatchInFetch(int64_t b) const { return b % config_.fetch_factor; }

// Appends the rows at sequence positions [pos, pos + len) of the shuffled sequence,
// wrapping around at total_cells_ (padding).
void EpochPlan::AppendSequence(int64_t pos, int64_t len, std::vector<int64_t>* out,
                               std::vector<int32_t>* lanes) const {
  while (len > 0) {
    const int64_t q = pos % pass_cells_;
    const int64_t take = std::min(len, pass_cells_ - q);
    ForEachEpochSpan(q, take, [&](int64_t p, int64_t n) {
      if (selection_ != nullptr) {
        AppendLanes(p, n, out, lanes);
      } else {
        AppendRange(p, n, out);
      }
    });
    pos += take;
    len -= take;
  }
}

// Same, for 0 <= pos, pos + len <= total_cells_.
void EpochPlan::AppendRange(int64_t pos, int64_t len, std::vector<int64_t>* out) const {
  if (!config_.shuffle) {
    for (int64_t t = 0; t < len; ++t) out->push_back(pos + t);
    return;
  }
  if (!slot_ends_.empty()) {
    AppendVariableBlocks(pos, len, out);
    return;
  }
  const int64_t b = block_size_;
  const int64_t full_cells = num_full_blocks_ * b;
  if (pos < full_cells) {
    const BlockPermutation perm(static_cast<uint64_t>(num_full_blocks_), block_key_);
    int64_t slot = pos / b;
    int64_t offset = pos % b;
    while (len > 0 && slot < num_full_blocks_) {
      const int64_t id = static_cast<int64_t>(perm.Forward(static_cast<uint64_t>(slot)));
      const std::size_t f =
          static_cast<std::size_t>(std::upper_bound(full_starts_per_file_.begin(),
                                                    full_starts_per_file_.end(), id) -
                                   full_starts_per_file_.begin()) -
          1;
      const int64_t row0 = file_offsets_[f] + (id - full_starts_per_file_[f]) * b;
      const int64_t take = std::min(len, b - offset);
      for (int64_t t = 0; t < take; ++t) out->push_back(row0 + offset + t);
      len -= take;
      pos += take;
      ++slot;
      offset = 0;
    }
  }
  if (len == 0) return;
  // The tail region: short blocks in their shuffled order.
  std::size_t k = static_cast<std::size_t>(
      std::upper_bound(tail_ends_.begin(), tail_ends_.end(), pos) - tail_ends_.begin());
  while (len > 0) {
    const std::size_t f = static_cast<std::size_t>(tail_files_[k]);
    const int64_t tail_len = file_sizes_[f] % b;
    const int64_t block_begin = tail_ends_[k] - tail_len;  // sequence position
    const int64_t row0 = file_offsets_[f] + file_sizes_[f] - tail_len;
    const int64_t offset = pos - block_begin;
    const int64_t take = std::min(len, tail_len - offset);
    for (int64_t t = 0; t < take; ++t) out->push_back(row0 + offset + t);
    len -= take;
    pos += take;
    ++k;
  }
}

// Variable blocks: checked, then laid out in their permuted order.
Status EpochPlan::SetBlockStarts(std::vector<int64_t> starts) {
  const int64_t n = total_cells_;
  if (starts.front() != 0) return Status::Invalid("sampling: block starts must begin at row 0");
  for (size_t i = 1; i < starts.size(); ++i) {
    if (starts[i] <= starts[i - 1] || starts[i] >= n) {
      return Status::Invalid("sampling: block start " + std::to_string(starts[i]) + " at " +
                             std::to_string(i) + " is not ascending within [0, " +
                             std::to_string(n) + ")");
    }
  }
  for (size_t f = 0; f + 1 < file_offsets_.size(); ++f) {
    if (file_sizes_[f] > 0 &&
        !std::binary_search(starts.begin(), starts.end(), file_offsets_[f])) {
      return Status::Invalid("sampling: file " + std::to_string(f) +
                             " does not start a block (blocks never straddle files)");
    }
  }
  block_starts_ = std::move(starts);
  if (!config_.shuffle) return Status::OK();
  const int64_t num_blocks = static_cast<int64_t>(block_starts_.size());
  const BlockPermutation perm(static_cast<uint64_t>(num_blocks), block_key_);
  slot_ends_.resize(block_starts_.size());
  int64_t at = 0;
  for (int64_t slot = 0; slot < num_blocks; ++slot) {
    const size_t id = static_cast<size_t>(perm.Forward(static_cast<uint64_t>(slot)));
    const int64_t end = id + 1 < block_starts_.size() ? block_starts_[id + 1] : n;
    at += end - block_starts_[id];
    slot_ends_[static_cast<size_t>(slot)] = at;
  }
  return Status::OK();
}

void EpochPlan::AppendVariableBlocks(int64_t pos, int64_t len, std::vector<int64_t>* out) const {
  const int64_t num_blocks = static_cast<int64_t>(block_starts_.size());
  const BlockPermutation perm(static_cast<uint64_t>(num_blocks), block_key_);
  size_t slot = static_cast<size_t>(
      std::upper_bound(slot_ends_.begin(), slot_ends_.end(), pos) - slot_ends_.begin());
  while (len > 0) {
    const size_t id = static_cast<size_t>(perm.Forward(slot));
    const int64_t size = slot_ends_[slot] - (slot > 0 ? slot_ends_[slot - 1] : 0);
    const int64_t offset = pos - (slot_ends_[slot] - size);
    const int64_t take = std::min(len, size - offset);
    for (int64_t t = 0; t < take; ++t) out->push_back(block_starts_[id] + offset + t);
    len -= take;
    pos += take;
    ++slot;
  }
}

Fetch EpochPlan::GetFetch(int64_t k) const {
  Fetch fetch;
  fetch.index = k;
  const int64_t fetch_cells = config_.batch_size * config_.fetch_factor;
  if (k < 0 || k >= num_fetches()) return fetch;
  const int64_t start = k * fetch_cells;
  const int64_t len = std::min(fetch_cells, rank_cells_ - start);
  const int64_t sequence_start = rank_begin_ + start;

  std::vector<int64_t> seq;
  std::vector<int32_t> seq_lanes;
  seq.reserve(static_cast<std::size_t>(len));
  AppendSequence(sequence_start, len, &seq, selection_ != nullptr ? &seq_lanes : nullptr);

  // Read order: rows ascending (ties, from padding, by sequence position).
  std::vector<std::pair<int64_t, int32_t>> sorted(static_cast<std::size_t>(len));
  for (int32_t i = 0; i < static_cast<int32_t>(len); ++i) sorted[i] = {seq[i], i};
  std::sort(sorted.begin(), sorted.end());
  fetch.rows.resize(static_cast<std::size_t>(len));
  std::vector<int32_t> order(static_cast<std::size_t>(len));  // sequence position -> index in rows
  for (int32_t j = 0; j < static_cast<int32_t>(len); ++j) {
    fetch.rows[j] = sorted[j].first;
    order[sorted[j].second] = j;
  }
  if (selection_ != nullptr) {
    fetch.lanes.resize(static_cast<std::size_t>(len));
    for (int32_t j = 0; j < static_cast<int32_t>(len); ++j) fetch.lanes[j] = seq_lanes[sorted[j].second];
  }

  const std::vector<int32_t> yield = YieldOrder(sequence_start, len, seq_lanes);
  const int64_t bs = config_.batch_size;
  fetch.batches.reserve(static_cast<std::size_t>(CeilDiv(len, bs)));
  for (int64_t s = 0; s < len; s += bs) {
    const int64_t e = std::min(len, s + bs);
    std::vector<int32_t>& batch = fetch.batches.emplace_back();
    batch.reserve(static_cast<std::size_t>(e - s));
    for (int64_t t = s; t < e; ++t) batch.push_back(order[static_cast<std::size_t>(yield[t])]);
  }
  return fetch;
}

// Yield order: the sequence order (streaming) or an in-memory shuffle of it. With a
// selection the shuffle is stratified by lane: each lane's cells are shuffled, then
// dealt evenly through the fetch (the j-th of a lane's n cells at (j + u) / n, u a
// random offset per lane), so every batch holds each lane in proportion, to within a
// cell, as the window interleave does for every stretch of fetches. A resumed pass mixes
// its number into the seed: its fetches are new windows of another sequence.
std::vector<int32_t> EpochPlan::YieldOrder(int64_t start, int64_t len,
                                           const std::vector<int32_t>& lanes) const {
  std::vector<int32_t> order(static_cast<std::size_t>(len));
  for (int32_t i = 0; i < static_cast<int32_t>(len); ++i) order[i] = i;
  if (!config_.shuffle) return order;
  uint64_t seed = FetchShuffleSeed(config_.seed, epoch_, start);
  if (pass_ > 0) {
    seed =
        MixCombine(MixCombine(seed, plan_internal::kTagResumedPass), static_cast<uint64_t>(pass_));
  }
  Xoshiro256 rng(seed);
  if (selection_ != nullptr) {
    std::vector<std::vector<int32_t>> by_lane(lane_plans_.size());
    for (int32_t i = 0; i < static_cast<int32_t>(len); ++i) by_lane[lanes[i]].push_back(i);
    std::vector<std::pair<double, int32_t>> keyed;
    keyed.reserve(static_cast<std::size_t>(len));
    for (auto& cells : by_lane) {
      if (cells.empty()) continue;
      FisherYates(cells, rng);
      const double u = static_cast<double>(rng.Next() >> 11) * 0x1.0p-53;
      const double n = static_cast<double>(cells.size());
      for (std::size_t j = 0; j < cells.size(); ++j) {
        keyed.emplace_back((static_cast<double>(j) + u) / n, cells[j]);
      }
    }
    std::sort(keyed.begin(), keyed.end());  // ties: by position, a total order
    for (std::size_t i = 0; i < keyed.size(); ++i) order[i] = keyed[i].second;
  } else {
    FisherYates(order, rng);
  }
  return order;
}

// --- Selections: lanes planned on their own, interleaved in windows ---------------------

Status EpochPlan::SetSelection(std::shared_ptr<const EpochSelection> selection,
                               const std::vector<int64_t>& block_starts) {
  const int64_t n_rows = file_offsets_.back();
  int64_t total = 0;
  for (size_t l = 0; l < selection->lanes.size(); ++l) {
    const SelectionLane& lane = selection->lanes[l];
    if (lane.rows == nullptr || lane.rows->size() != n_rows) {
      return Status::Invalid("sampling: lane " + std::to_string(l) + " does not span the " +
                             std::to_string(n_rows) + " rows of the collection");
    }
    // The lane's rows in each file are its virtual files; virtual row v is the v-th
    // selected row, so blocks are runs of consecutive selected rows within one file.
    std::vector<int64_t> sizes(file_sizes_.size());
    for (size_t f = 0; f < sizes.size(); ++f) {
      sizes[f] = lane.rows->Rank(file_offsets_[f + 1]) - lane.rows->Rank(file_offsets_[f]);
    }
    std::vector<int64_t> starts;
    if (config_.chunk_blocks) {
      for (int64_t b : block_starts) {
        const int64_t v = lane.rows->Rank(b);
        if (v < lane.rows->count() && (starts.empty() || v > starts.back())) starts.push_back(v);
      }
    }
    SamplingConfig c = config_;
    c.seed = MixCombine(config_.seed, lane.key);
    c.drop_last = false;
    CF_ASSIGN_OR_RETURN(EpochPlan lp, Make(std::move(sizes), c, epoch_, 0, 1, std::move(starts)));
    lane_blocks_.push_back(lp.NumBlocks());
    lane_plans_.push_back(std::make_shared<const EpochPlan>(std::move(lp)));
    if (lane.rows->count() > kInt64Max - total) {
      return Status::Invalid("sampling: total number of selected cells overflows");
    }
    total += lane.rows->count();
  }
  selection_ = std::move(selection);
  total_cells_ = total;
  num_windows_ = std::max<int64_t>(1, CeilDiv(total, config_.batch_size));
  return Status::OK();
}

int64_t EpochPlan::NumBlocks() const {
  if (total_cells_ == 0) return 0;
  if (!block_starts_.empty()) return static_cast<int64_t>(block_starts_.size());
  if (!config_.shuffle) return CeilDiv(total_cells_, block_size_);
  return num_full_blocks_ + static_cast<int64_t>(tail_files_.size());
}

int64_t EpochPlan::CellsBeforeBlock(int64_t j) const {
  if (j >= NumBlocks()) return total_cells_;
  if (!block_starts_.empty()) {
    if (!config_.shuffle) return block_starts_[static_cast<size_t>(j)];
    return j == 0 ? 0 : slot_ends_[static_cast<size_t>(j - 1)];
  }
  if (!config_.shuffle || j <= num_full_blocks_) return std::min(j * block_size_, total_cells_);
  return tail_ends_[static_cast<size_t>(j - num_full_blocks_ - 1)];
}

int64_t EpochPlan::LaneBlocksBefore(size_t lane, int64_t window) const {
  return static_cast<int64_t>(static_cast<__int128>(window) * lane_blocks_[lane] / num_windows_);
}

int64_t EpochPlan::WindowStart(int64_t window) const {
  int64_t at = 0;
  for (size_t l = 0; l < lane_plans_.size(); ++l) {
    at += lane_plans_[l]->CellsBeforeBlock(LaneBlocksBefore(l, window));
  }
  return at;
}

// Rows at sequence positions [pos, pos + len), 0 <= pos, pos + len <= total_cells_: the
// windows in order, within a window the lanes in order, each lane's share of the window
// a stretch of its own sequence.
void EpochPlan::AppendLanes(int64_t pos, int64_t len, std::vector<int64_t>* out,
                            std::vector<int32_t>* lanes) const {
  int64_t lo = 0, hi = num_windows_;  // the last window starting at or before pos
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (WindowStart(mid) <= pos ? lo : hi) = mid;
  }
  std::vector<int64_t> virt;
  int64_t at = WindowStart(lo);
  for (int64_t w = lo; len > 0 && w < num_windows_; ++w) {
    for (size_t l = 0; l < lane_plans_.size() && len > 0; ++l) {
      const EpochPlan& lp = *lane_plans_[l];
      const int64_t a = lp.CellsBeforeBlock(LaneBlocksBefore(l, w));
      const int64_t b = lp.CellsBeforeBlock(LaneBlocksBefore(l, w + 1));
      if (pos < at + (b - a)) {
        const int64_t skip = pos - at;
        const int64_t take = std::min(len, b - a - skip);
        virt.clear();
        lp.AppendRange(a + skip, take, &virt);
        const RowSelection& rows = *selection_->lanes[l].rows;
        for (size_t i = 0; i < virt.size();) {  // runs of consecutive virtual rows
          size_t j = i + 1;
          while (j < virt.size() && virt[j] == virt[j - 1] + 1) ++j;
          rows.AppendFrom(virt[i], static_cast<int64_t>(j - i), out);
          i = j;
        }
        if (lanes != nullptr) lanes->insert(lanes->end(), static_cast<size_t>(take), static_cast<int32_t>(l));
        pos += take;
        len -= take;
      }
      at += b - a;
    }
  }
}

std::vector<int64_t> EpochPlan::LaneCellsBefore(int64_t pos) const {
  std::vector<int64_t> cells(lane_plans_.size(), 0);
  if (pos >= total_cells_) {
    for (size_t l = 0; l < cells.size(); ++l) cells[l] = lane_plans_[l]->total_cells_;
    return cells;
  }
  int64_t lo = 0, hi = num_windows_;
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (WindowStart(mid) <= pos ? lo : hi) = mid;
  }
  int64_t left = pos - WindowStart(lo);
  for (size_t l = 0; l < cells.size(); ++l) {
    const EpochPlan& lp = *lane_plans_[l];
    const int64_t a = lp.CellsBeforeBlock(LaneBlocksBefore(l, lo));
    const int64_t b = lp.CellsBeforeBlock(LaneBlocksBefore(l, lo + 1));
    const int64_t take = std::min(left, b - a);
    cells[l] = a + take;
    left -= take;
  }
  return cells;
}

std::vector<int64_t> EpochPlan::LaneCellsOfRank() const {
  std::vector<int64_t> cells(lane_plans_.size(), 0);
  int64_t pos = rank_begin_, len = rank_cells_;
  while (len > 0 && pass_cells_ > 0) {
    const int64_t q = pos % pass_cells_;
    const int64_t take = std::min(len, pass_cells_ - q);
    ForEachEpochSpan(q, take, [&](int64_t p, int64_t n) {
      const std::vector<int64_t> a = LaneCellsBefore(p), b = LaneCellsBefore(p + n);
      for (size_t l = 0; l < cells.size(); ++l) cells[l] += b[l] - a[l];
    });
    pos += take;
    len -= take;
  }
  return cells;
}

}  // namespace cellfeed
