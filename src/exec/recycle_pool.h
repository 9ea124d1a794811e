// Recycles any buffer-holding object (a fetch's transformed outputs) the way
// MatrixPool recycles decoded matrices: Share() hands out a shared_ptr whose last
// release returns the object here, so the next fetch writes into buffers that already
// have their size (no allocation or page faults per fetch in steady state).
#pragma once

#include <memory>
#include <mutex>
#include <vector>

namespace cellfeed::exec {

template <typename T>
class RecyclePool : public std::enable_shared_from_this<RecyclePool<T>> {
 public:
  static std::shared_ptr<RecyclePool> Make(size_t capacity) {
    return std::shared_ptr<RecyclePool>(new RecyclePool(capacity));
  }

  std::unique_ptr<T> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.empty()) return std::make_unique<T>();
    auto m = std::move(free_.back());
    free_.pop_back();
    return m;
  }

  std::shared_ptr<const T> Share(std::unique_ptr<T> m) {
    std::weak_ptr<RecyclePool> pool = this->weak_from_this();
    return std::shared_ptr<const T>(m.release(), [pool](const T* p) {
      std::unique_ptr<T> owned(const_cast<T*>(p));
      if (auto alive = pool.lock()) alive->Give(std::move(owned));
    });
  }

 private:
  explicit RecyclePool(size_t capacity) : capacity_(capacity) {}
  void Give(std::unique_ptr<T> m) {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.size() < capacity_) free_.push_back(std::move(m));
  }

  const size_t capacity_;
  std::mutex mu_;
  std::vector<std::unique_ptr<T>> free_;
};

}  // namespace cellfeed::exec
