// Model inputs computed just ahead of the consumer, batch by batch, on threads of their own.
//
// Producers decode whole fetches (a fetch is the unit of reading and shuffling); the
// batches of each decoded fetch are then transformed here in the order the consumer takes
// them, at most `ahead` batches beyond the consumer. Transforming a whole fetch at once,
// as the producers once did, held every batch's inputs of `prefetch` + 2 fetches: 64
// dense 19,266-wide batches of 64 cells are ~0.8 GB per fetch, and all of a fetch's
// batches ran on the one producer that decoded it. Here every thread of the collection
// can work on the batches of one fetch, and memory is `ahead` batches.
//
// Claims go strictly in consumer order (fetch seq, then batch), so the batch the consumer
// waits for is always the next one claimed or already claimed: no deadlock, whatever
// order the producers finish fetches in.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "cellfeed/csr.h"
#include "cellfeed/status.h"
#include "cellfeed/transform.h"

namespace cellfeed::exec {

// One decoded fetch's batches awaiting inputs: what the transform reads, and a slot per
// batch that the queue fills.
struct FetchInputs {
  std::shared_ptr<const CsrMatrix> matrix;        // the fetch, rows in batch order
  std::shared_ptr<const std::vector<int64_t>> rows;  // global row id per fetch row
  std::vector<uint64_t> keys;                     // randomness key per fetch row
  std::vector<std::pair<int64_t, int64_t>> ranges;  // fetch rows [begin, end) per batch
  std::vector<std::shared_ptr<const transform::Outputs>> outputs;
  std::vector<Status> status;
  std::vector<char> ready;
};

class InputsAhead {
 public:
  using Fn = std::function<Result<std::shared_ptr<const transform::Outputs>>(const FetchInputs&, size_t)>;

  InputsAhead(int threads, int64_t ahead) : threads_(std::max(1, threads)), ahead_(std::max<int64_t>(1, ahead)) {}
  ~InputsAhead() { Stop(); }

  // Starts the threads for a new epoch's sequence of fetches 0, 1, ...
  void Start(Fn fn) {
    Stop();
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = std::move(fn);
    fetches_.clear();
    next_seq_ = 0;
    next_batch_ = 0;
    claimed_ = consumed_ = 0;
    closed_ = false;
    for (int t = 0; t < threads_; ++t) workers_.emplace_back([this] { Work(); });
  }

  // Closes the queue, joins its threads and drops every pending input.
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
      cv_.notify_all();
    }
    for (std::thread& t : workers_) t.join();
    workers_.clear();
    std::lock_guard<std::mutex> lock(mu_);
    fetches_.clear();
  }

  // A producer hands over fetch `seq`'s batches (any order of seq).
  void Add(int64_t seq, std::shared_ptr<FetchInputs> f) {
    const size_t n = f->ranges.size();
    f->outputs.assign(n, nullptr);
    f->status.assign(n, Status::OK());
    f->ready.assign(n, 0);
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    fetches_.emplace(seq, std::move(f));
    cv_.notify_all();
  }

  // Batch `batch` of fetch `seq`, once transformed; the consumer takes each exactly once,
  // in order. Cancelled("timeout") when it is not ready within `timeout` (ask again).
  Result<std::shared_ptr<const transform::Outputs>> Take(int64_t seq, size_t batch,
                                                         std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    std::shared_ptr<FetchInputs> f;
    const bool done = cv_.wait_for(lock, timeout, [&] {
      if (closed_) return true;
      auto it = fetches_.find(seq);
      if (it == fetches_.end() || !it->second->ready[batch]) return false;
      f = it->second;
      return true;
    });
    if (!done) return Status::Cancelled("timeout");
    if (closed_) return Status::Cancelled("loader stopped");
    ++consumed_;
    if (batch + 1 == f->ranges.size()) fetches_.erase(seq);
    cv_.notify_all();  // one more batch may be claimed
    if (!f->status[batch].ok()) return f->status[batch];
    return std::move(f->outputs[batch]);
  }

 private:
  void Work() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      std::shared_ptr<FetchInputs> f;
      cv_.wait(lock, [&] {
        if (closed_) return true;
        auto it = fetches_.find(next_seq_);
        while (it != fetches_.end() && it->second->ranges.empty()) {  // nothing to transform
          fetches_.erase(it);
          it = fetches_.find(++next_seq_);
        }
        if (it == fetches_.end() || claimed_ - consumed_ >= ahead_) return false;
        f = it->second;
        return true;
      });
      if (closed_) return;
      const size_t j = next_batch_;
      if (++next_batch_ >= f->ranges.size()) {
        ++next_seq_;
        next_batch_ = 0;
      }
      ++claimed_;
      lock.unlock();
      std::shared_ptr<const transform::Outputs> out;
      Status st;
      try {
        auto r = fn_(*f, j);
        if (r.ok()) {
          out = std::move(r).value();
        } else {
          st = r.status();
        }
      } catch (const std::exception& e) {  // allocation failure and the like
        st = Status::IOError(std::string("loader stopped: ") + e.what());
      }
      lock.lock();
      f->outputs[j] = std::move(out);
      f->status[j] = std::move(st);
      f->ready[j] = 1;
      cv_.notify_all();
    }
  }

  const int threads_;
  const int64_t ahead_;
  Fn fn_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int64_t, std::shared_ptr<FetchInputs>> fetches_;  // added, not yet fully taken
  int64_t next_seq_ = 0;
  size_t next_batch_ = 0;
  int64_t claimed_ = 0, consumed_ = 0;
  bool closed_ = true;
  std::vector<std::thread> workers_;
};

}  // namespace cellfeed::exec
