// Recycles the decoded matrices of fetches. A fetch's matrix returns here once every
// batch that views it (in C++, numpy or torch) is released, and the next fetch reads
// into its buffers: steady-state loading touches no fresh memory, so there is neither
// allocation nor page-fault cost per fetch. The pool outlives the loader if batches do.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "cellfeed/csr.h"

namespace cellfeed::exec {

class MatrixPool : public std::enable_shared_from_this<MatrixPool> {
 public:
  static std::shared_ptr<MatrixPool> Make(size_t capacity) {
    return std::shared_ptr<MatrixPool>(new MatrixPool(capacity));
  }

  std::unique_ptr<CsrMatrix> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.empty()) return std::make_unique<CsrMatrix>();
    auto m = std::move(free_.back());
    free_.pop_back();
    return m;
  }

  // Shares `m`; when the last holder lets go, it comes back to the pool.
  std::shared_ptr<const CsrMatrix> Share(std::unique_ptr<CsrMatrix> m) {
    std::weak_ptr<MatrixPool> pool = weak_from_this();
    return std::shared_ptr<const CsrMatrix>(m.release(), [pool](const CsrMatrix* p) {
      std::unique_ptr<CsrMatrix> owned(const_cast<CsrMatrix*>(p));
      if (auto alive = pool.lock()) alive->Give(std::move(owned));
    });
  }

 private:
  explicit MatrixPool(size_t capacity) : capacity_(capacity) {}
  void Give(std::unique_ptr<CsrMatrix> m) {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.size() < capacity_) free_.push_back(std::move(m));
  }

  const size_t capacity_;
  std::mutex mu_;
  std::vector<std::unique_ptr<CsrMatrix>> free_;
};

}  // namespace cellfeed::exec
