#include "util/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

using cellfeed::Status;
using cellfeed::util::ThreadPool;

TEST(ThreadPool, RunsEveryIndexOnce) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    std::vector<std::atomic<int>> hits(1000);
    ASSERT_TRUE(pool.ParallelFor(hits.size(), [&](size_t i) {
                      hits[i]++;
                      return Status::OK();
                    }).ok());
    for (auto& h : hits) EXPECT_EQ(h.load(), 1);
  }
}

TEST(ThreadPool, ReturnsTheLowestFailedIndex) {
  ThreadPool pool(3);
  Status st = pool.ParallelFor(100, [&](size_t i) {
    if (i == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return i % 10 == 0 ? Status::Invalid("bad " + std::to_string(i)) : Status::OK();
  });
  EXPECT_EQ(st.code(), cellfeed::StatusCode::kInvalid);
  EXPECT_EQ(st.message(), "bad 0");
}

TEST(ThreadPool, ConcurrentSubmittersShareThePool) {
  ThreadPool pool(2);
  std::atomic<long> sum{0};
  std::vector<std::thread> submitters;
  for (int t = 0; t < 4; ++t) {
    submitters.emplace_back([&] {
      for (int rep = 0; rep < 50; ++rep) {
        ASSERT_TRUE(pool.ParallelFor(64, [&](size_t i) {
                          sum += static_cast<long>(i);
                          return Status::OK();
                        }).ok());
      }
    });
  }
  for (auto& t : submitters) t.join();
  EXPECT_EQ(sum.load(), 4L * 50 * (63 * 64 / 2));
}
