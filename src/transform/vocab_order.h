// A cell's genes put in vocabulary order, duplicates summed, for maps that do not keep
// the file's column order (real vocabularies never do: the scFoundation panel is
// alphabetical by symbol, Geneformer's dictionary has an order of its own, and files list
// genes by position or ID). Each value goes to its id's slot of a vocabulary-wide row and
// its bit is set; the set bits, read word by word, give the ids ascending. O(n + V/64) a
// cell instead of a comparison sort of n pairs (std::sort on them mispredicted on every
// compare). Duplicates are summed in file order; a gene's single value is kept as it is.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <memory>
#include <vector>

namespace cellfeed::transform {

class VocabOrder {
 public:
  // idx[0, n) and x[0, n): the cell's vocabulary ids and values in file order, ids in
  // [0, vocab_size). On return they hold the distinct ids ascending and their sums, and
  // are resized to that count.
  void Sort(int64_t vocab_size, std::vector<int32_t>& idx, std::vector<double>& x) {
    const size_t V = static_cast<size_t>(vocab_size);
    if (size_ != V) {  // a slot is read only after its first visit assigns it: no zeroing
      value_.reset(new double[V]);
      size_ = V;
      bits_.assign((V + 63) / 64, 0);
    }
    uint64_t lo_word = bits_.size(), hi_word = 0;  // the words any id set
    for (size_t k = 0; k < idx.size(); ++k) {
      const uint32_t g = static_cast<uint32_t>(idx[k]);
      uint64_t& word = bits_[g >> 6];
      const uint64_t bit = uint64_t{1} << (g & 63);
      if (word & bit) {
        value_[g] += x[k];
      } else {
        value_[g] = x[k];
        word |= bit;
      }
      lo_word = std::min<uint64_t>(lo_word, g >> 6);
      hi_word = std::max<uint64_t>(hi_word, g >> 6);
    }
    size_t n = 0;
    for (uint64_t w = lo_word; w <= hi_word && w < bits_.size(); ++w) {
      for (uint64_t word = bits_[w]; word != 0; word &= word - 1) {
        const uint32_t g = static_cast<uint32_t>(w * 64 + static_cast<uint64_t>(std::countr_zero(word)));
        idx[n] = static_cast<int32_t>(g);
        x[n++] = value_[g];
      }
      bits_[w] = 0;
    }
    idx.resize(n);
    x.resize(n);
  }

 private:
  std::unique_ptr<double[]> value_;  // by vocabulary id
  size_t size_ = 0;                  // its vocabulary's size
  std::vector<uint64_t> bits_;       // ids this cell has
};

}  // namespace cellfeed::transform
