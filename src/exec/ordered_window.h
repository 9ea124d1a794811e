// Items 0..n-1 produced by several threads in any order, consumed in order.
//
// Producers Claim() the next index, produce it, and Put() it; the consumer Pop()s them
// strictly in index order. A producer may claim item i only while i < next + depth, where
// `next` is the item the consumer waits for: at most `depth` items are claimed or waiting
// beyond the one being consumed, so memory is bounded by depth, not by n. Close() wakes
// everyone: Claim then returns -1 and Pop returns kClosed.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>

namespace cellfeed::exec {

template <typename T>
class OrderedWindow {
 public:
  explicit OrderedWindow(int64_t depth) : depth_(depth) {}

  // Starts a new sequence of n items; drops anything left from the last one.
  void Reset(int64_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    n_ = n;
    next_claim_ = next_pop_ = 0;
    ready_.clear();
    closed_ = false;
  }

  int64_t Claim() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return closed_ || next_claim_ >= n_ || next_claim_ < next_pop_ + depth_; });
    if (closed_ || next_claim_ >= n_) return -1;
    return next_claim_++;
  }

  void Put(int64_t i, T item) {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    ready_.emplace(i, std::move(item));
    cv_.notify_all();
  }

  enum class PopResult { kItem, kEnd, kClosed, kTimeout };
  PopResult Pop(T& out, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] {
          return closed_ || next_pop_ >= n_ || ready_.count(next_pop_) > 0;
        })) {
      return PopResult::kTimeout;
    }
    if (closed_) return PopResult::kClosed;
    if (next_pop_ >= n_) return PopResult::kEnd;
    auto it = ready_.find(next_pop_);
    out = std::move(it->second);
    ready_.erase(it);
    ++next_pop_;
    cv_.notify_all();  // a producer may claim one more
    return PopResult::kItem;
  }

  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    ready_.clear();
    cv_.notify_all();
  }

 private:
  const int64_t depth_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int64_t, T> ready_;
  int64_t n_ = 0, next_claim_ = 0, next_pop_ = 0;
  bool closed_ = true;
};

}  // namespace cellfeed::exec
