#include "util/thread_pool.h"

#include <atomic>

namespace cellfeed::util {

struct ThreadPool::Job {
  const std::function<Status(size_t)>* fn;
  size_t n;
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  std::condition_variable done_cv;
  size_t finished = 0;  // guarded by mu
  size_t error_index = ~size_t{0};
  Status error;
};

int ThreadPool::DefaultThreads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = DefaultThreads();
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::Work(Job& job) {
  size_t mine = 0;
  size_t err_index = ~size_t{0};
  Status err;
  for (;;) {
    size_t i = job.next.fetch_add(1);
    if (i >= job.n) break;
    ++mine;
    if (job.failed.load(std::memory_order_relaxed)) continue;
    Status st = (*job.fn)(i);
    if (!st.ok()) {
      job.failed = true;
      if (i < err_index) {
        err_index = i;
        err = std::move(st);
      }
    }
  }
  std::lock_guard<std::mutex> lock(job.mu);
  if (err_index < job.error_index) {
    job.error_index = err_index;
    job.error = std::move(err);
  }
  job.finished += mine;
  if (job.finished == job.n) job.done_cv.notify_all();
}

void ThreadPool::WorkerLoop() {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
      if (stop_) return;
      job = jobs_.front();
      // Once every index is claimed, the job needs no more workers.
      if (job->next.load() >= job->n) {
        jobs_.pop_front();
        continue;
      }
    }
    Work(*job);
  }
}

Status ThreadPool::ParallelFor(size_t n, const std::function<Status(size_t)>& fn) {
  if (n == 0) return Status::OK();
  auto job = std::make_shared<Job>();
  job->fn = &fn;
  job->n = n;
  if (!workers_.empty() && n > 1) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      jobs_.push_back(job);
    }
    cv_.notify_all();
  }
  Work(*job);
  {
    std::unique_lock<std::mutex> lock(job->mu);
    job->done_cv.wait(lock, [&] { return job->finished == job->n; });
  }
  {
    // Drop the finished job from the queue if no worker did.
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = jobs_.begin(); it != jobs_.end(); ++it) {
      if (*it == job) {
        jobs_.erase(it);
        break;
      }
    }
  }
  return job->error;
}

}  // namespace cellfeed::util
