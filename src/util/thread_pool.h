// A fixed set of owned worker threads running index-parallel jobs.
// The calling thread works on its own job too, so ParallelFor never waits idle and a pool
// of size 1 runs everything inline. Several threads may submit jobs at once; jobs are
// served first come, first served. Workers are joined in the destructor.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "cellfeed/status.h"

namespace cellfeed::util {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);  // threads <= 0: one per hardware thread
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn(0..n-1) on the pool and the caller. After the first failure the remaining
  // indices are skipped; the error of the lowest failed index is returned.
  Status ParallelFor(size_t n, const std::function<Status(size_t)>& fn);

  static int DefaultThreads();

 private:
  struct Job;
  void WorkerLoop();
  static void Work(Job& job);

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> jobs_;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace cellfeed::util
