// A blocking FIFO of bounded capacity with cancellation: the buffer between the fetch
// producer and the consumer. Push blocks while full; Pop blocks while empty; Close wakes
// everyone (Push then fails, Pop drains what is left and then reports closed).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>

namespace cellfeed::exec {

template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(size_t capacity) : capacity_(capacity) {}

  bool Push(T item) {
    std::unique_lock<std::mutex> lock(mu_);
    not_full_.wait(lock, [&] { return closed_ || items_.size() < capacity_; });
    if (closed_) return false;
    items_.push_back(std::move(item));
    not_empty_.notify_one();
    return true;
  }

  enum class PopResult { kItem, kClosed, kTimeout };
  PopResult Pop(T& out, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!not_empty_.wait_for(lock, timeout, [&] { return closed_ || !items_.empty(); })) {
      return PopResult::kTimeout;
    }
    if (items_.empty()) return PopResult::kClosed;
    out = std::move(items_.front());
    items_.pop_front();
    not_full_.notify_one();
    return PopResult::kItem;
  }

  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    not_full_.notify_all();
    not_empty_.notify_all();
  }

  // Drops queued items and reopens (a new epoch).
  void Reset() {
    std::lock_guard<std::mutex> lock(mu_);
    items_.clear();
    closed_ = false;
  }

 private:
  const size_t capacity_;
  std::mutex mu_;
  std::condition_variable not_full_, not_empty_;
  std::deque<T> items_;
  bool closed_ = false;
};

}  // namespace cellfeed::exec
