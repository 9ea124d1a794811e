// RowSelection: bitmap + rank directory (include/cellfeed/selection.h).
#include <algorithm>
#include <bit>

#include "cellfeed/selection.h"

namespace cellfeed {

RowSelection::RowSelection(int64_t n_rows)
    : n_rows_(n_rows), words_(static_cast<size_t>((n_rows + 63) / 64), 0) {
  Finish();
}

RowSelection RowSelection::All(int64_t n_rows) {
  RowSelection s(n_rows);
  s.SetRange(0, n_rows);
  s.Finish();
  return s;
}

void RowSelection::SetRange(int64_t begin, int64_t end) {
  for (int64_t r = begin; r < end;) {
    if ((r & 63) == 0 && end - r >= 64) {
      words_[static_cast<size_t>(r >> 6)] = ~uint64_t{0};
      r += 64;
    } else {
      Set(r++);
    }
  }
}

void RowSelection::Finish() {
  // Bits past n_rows are never set (Set is only called with rows < n_rows).
  const size_t nblocks = (words_.size() + kWordsPerBlock - 1) / kWordsPerBlock;
  block_ranks_.assign(nblocks + 1, 0);
  int64_t c = 0;
  for (size_t b = 0; b < nblocks; ++b) {
    block_ranks_[b] = c;
    const size_t end = std::min(words_.size(), (b + 1) * kWordsPerBlock);
    for (size_t w = b * kWordsPerBlock; w < end; ++w) c += std::popcount(words_[w]);
  }
  block_ranks_[nblocks] = c;
  count_ = c;
}

int64_t RowSelection::Rank(int64_t row) const {
  if (row >= n_rows_) return count_;
  const size_t w = static_cast<size_t>(row >> 6);
  const size_t b = w / kWordsPerBlock;
  int64_t r = block_ranks_[b];
  for (size_t i = b * kWordsPerBlock; i < w; ++i) r += std::popcount(words_[i]);
  const uint64_t below = (row & 63) == 0 ? 0 : words_[w] & ((uint64_t{1} << (row & 63)) - 1);
  return r + std::popcount(below);
}

int64_t RowSelection::Select(int64_t k) const {
  // The last directory block whose rank is <= k holds the k-th row.
  const size_t b = static_cast<size_t>(
      std::upper_bound(block_ranks_.begin(), block_ranks_.end() - 1, k) - block_ranks_.begin() - 1);
  int64_t left = k - block_ranks_[b];
  for (size_t w = b * kWordsPerBlock;; ++w) {
    const int pc = std::popcount(words_[w]);
    if (left < pc) {
      uint64_t bits = words_[w];
      for (int64_t i = 0; i < left; ++i) bits &= bits - 1;
      return static_cast<int64_t>(w << 6) + __builtin_ctzll(bits);
    }
    left -= pc;
  }
}

void RowSelection::AppendFrom(int64_t k, int64_t len, std::vector<int64_t>* out) const {
  if (len <= 0) return;
  const int64_t first = Select(k);
  size_t w = static_cast<size_t>(first >> 6);
  uint64_t bits = words_[w] & (~uint64_t{0} << (first & 63));
  for (int64_t left = len;;) {
    while (bits != 0) {
      out->push_back(static_cast<int64_t>(w << 6) + __builtin_ctzll(bits));
      bits &= bits - 1;
      if (--left == 0) return;
    }
    bits = words_[++w];
  }
}

}  // namespace cellfeed
