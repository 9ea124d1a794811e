// What a declared corpus hands the pure plan: sets of rows, as compact values.
//
// RowSelection is a bitmap over global rows with a rank directory: 1 bit per row plus 8
// bytes per 512 rows, whatever the pattern (a random half of 100M rows costs 14 MB; runs
// of rows would cost 16 bytes per run, 400 MB). Rank (selected rows before a row) is
// O(1); Select (the k-th selected row) is a binary search over the directory plus a scan
// of at most 8 words.
//
// An EpochSelection lists the lanes of one epoch: each lane is one pass over a set of rows
// (a source, or one class of a class-balanced source; an upsampled source has one lane
// per copy). The plan shuffles each lane's blocks on its own and interleaves the lanes in
// proportion to their sizes (docs/CORPUS.md).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace cellfeed {

class RowSelection {
 public:
  RowSelection() = default;
  explicit RowSelection(int64_t n_rows);  // nothing selected yet
  static RowSelection All(int64_t n_rows);

  // Building: Set rows, then Finish() once before any query.
  void Set(int64_t row) { words_[static_cast<size_t>(row >> 6)] |= uint64_t{1} << (row & 63); }
  void SetRange(int64_t begin, int64_t end);
  void Finish();

  int64_t size() const { return n_rows_; }  // rows spanned: [0, size())
  int64_t count() const { return count_; }  // rows selected
  bool Contains(int64_t row) const {
    return (words_[static_cast<size_t>(row >> 6)] >> (row & 63)) & 1;
  }
  int64_t Rank(int64_t row) const;    // selected rows < row, 0 <= row <= size()
  int64_t Select(int64_t k) const;    // the k-th selected row, 0 <= k < count()
  // Appends the selected rows k, k+1, ..., k+len-1 (ascending).
  void AppendFrom(int64_t k, int64_t len, std::vector<int64_t>* out) const;
  // Calls f(row) for every selected row in [begin, end), ascending.
  template <typename F>
  void ForEach(int64_t begin, int64_t end, F&& f) const;

  const std::vector<uint64_t>& words() const { return words_; }
  std::vector<uint64_t>& mutable_words() { return words_; }  // then Finish() again

 private:
  static constexpr int kWordsPerBlock = 8;  // rank directory: one count per 512 rows
  int64_t n_rows_ = 0;
  int64_t count_ = 0;
  std::vector<uint64_t> words_;
  std::vector<int64_t> block_ranks_;  // selected rows before each 512-row block, + count
};

struct SelectionLane {
  std::shared_ptr<const RowSelection> rows;  // one pass over these rows
  uint64_t key = 0;     // distinct per lane: keys its block order
  int32_t source = 0;   // the declared source it belongs to (reports, batch labels)
  int32_t copy = 0;     // 0 = first pass; upsampled sources repeat cells in copies 1..k
};

struct EpochSelection {
  std::vector<SelectionLane> lanes;
};

template <typename F>
void RowSelection::ForEach(int64_t begin, int64_t end, F&& f) const {
  if (begin >= end) return;
  size_t w = static_cast<size_t>(begin >> 6);
  const size_t last = static_cast<size_t>((end - 1) >> 6);
  uint64_t bits = words_[w] & (~uint64_t{0} << (begin & 63));
  for (;;) {
    if (w == last && ((end & 63) != 0)) bits &= (uint64_t{1} << (end & 63)) - 1;
    while (bits != 0) {
      f(static_cast<int64_t>(w << 6) + __builtin_ctzll(bits));
      bits &= bits - 1;
    }
    if (w == last) return;
    bits = words_[++w];
  }
}

}  // namespace cellfeed
