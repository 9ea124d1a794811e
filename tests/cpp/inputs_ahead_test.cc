#include "exec/inputs_ahead.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

using cellfeed::Result;
using cellfeed::Status;
using cellfeed::exec::FetchInputs;
using cellfeed::exec::InputsAhead;
using cellfeed::transform::Outputs;
using namespace std::chrono_literals;

namespace {

std::shared_ptr<FetchInputs> FetchOf(int batches) {
  auto f = std::make_shared<FetchInputs>();
  for (int j = 0; j < batches; ++j) f->ranges.emplace_back(j, j + 1);
  return f;
}

// An Outputs whose one tensor's name says which fetch and batch it was made for.
std::shared_ptr<const Outputs> Tagged(int64_t seq, size_t j) {
  auto o = std::make_shared<Outputs>();
  o->tensors.resize(1);
  o->tensors[0].name = std::to_string(seq) + "/" + std::to_string(j);
  return o;
}

}  // namespace

// Fetches added in reverse order still come out in consumer order, and the work never
// runs more than `ahead` batches beyond the consumer.
TEST(InputsAhead, ConsumerOrderAndBoundedLead) {
  const int64_t ahead = 3;
  InputsAhead q(4, ahead);
  std::atomic<int64_t> started{0}, asked{0}, worst_lead{0};  // asked: Take calls begun
  std::map<const FetchInputs*, int64_t> seq_of;
  std::vector<std::shared_ptr<FetchInputs>> fetches;
  for (int s = 0; s < 5; ++s) fetches.push_back(FetchOf(s == 2 ? 0 : 4));  // fetch 2: no batches
  for (int s = 0; s < 5; ++s) seq_of[fetches[s].get()] = s;
  q.Start([&](const FetchInputs& f, size_t j) -> Result<std::shared_ptr<const Outputs>> {
    const int64_t lead = ++started - asked.load();
    int64_t w = worst_lead.load();
    while (lead > w && !worst_lead.compare_exchange_weak(w, lead)) {}
    std::this_thread::sleep_for(1ms);
    return Tagged(seq_of.at(&f), j);
  });
  for (int s = 4; s >= 0; --s) q.Add(s, fetches[s]);
  for (int s = 0; s < 5; ++s) {
    for (size_t j = 0; j < fetches[s]->ranges.size(); ++j) {
      std::this_thread::sleep_for(2ms);  // a slow consumer: the work must wait for it
      ++asked;  // before Take: the batch counts as consumed inside it
      auto r = q.Take(s, j, 10s);
      ASSERT_TRUE(r.ok()) << r.status().message();
      EXPECT_EQ(r.value()->tensors[0].name, std::to_string(s) + "/" + std::to_string(j));
    }
  }
  EXPECT_EQ(started.load(), 16);
  EXPECT_LE(worst_lead.load(), ahead);
  q.Stop();
}

// An error is handed to the consumer at its batch; a batch not ready in time is a
// timeout that can be asked again; Stop joins threads blocked on the lead.
TEST(InputsAhead, ErrorsTimeoutsAndStop) {
  InputsAhead q(2, 2);
  std::atomic<bool> release{false};
  q.Start([&](const FetchInputs&, size_t j) -> Result<std::shared_ptr<const Outputs>> {
    if (j == 0) {
      while (!release.load()) std::this_thread::sleep_for(1ms);
    }
    if (j == 1) return Status::Invalid("bad counts in batch 1");
    return Tagged(0, j);
  });
  q.Add(0, FetchOf(6));
  auto r = q.Take(0, 0, 20ms);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "timeout");
  release = true;
  r = q.Take(0, 0, 10s);
  ASSERT_TRUE(r.ok());
  r = q.Take(0, 1, 10s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "bad counts in batch 1");
  q.Stop();  // batches 2..5 are claimed or waiting on the lead: Stop must not hang
  auto after = q.Take(0, 2, 10ms);
  EXPECT_FALSE(after.ok());
}
