// Tests of the epoch plan (include/cellfeed/plan.h): coverage, batch counts, file-aligned
// blocks, determinism, sharding, random access, and the reproduction of Table 2 of the
// scDataset paper (docs/SAMPLING.md).
#include "cellfeed/plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iomanip>
#include <iostream>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <vector>

#include "plan/block_permutation.h"

namespace cellfeed {
namespace {

using Batches = std::vector<std::vector<int64_t>>;

EpochPlan MakeOk(const std::vector<int64_t>& sizes, const SamplingConfig& c, int64_t epoch = 0,
                 int rank = 0, int world = 1) {
  auto r = EpochPlan::Make(sizes, c, epoch, rank, world);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return std::move(r).value();
}

// All batches of the epoch, as global rows, in yield order. Also checks the structure of
// every fetch: rows ascending, batches a partition of the positions, full batches.
Batches CollectBatches(const EpochPlan& plan) {
  Batches out;
  const int64_t bs = plan.config().batch_size;
  for (int64_t k = 0; k < plan.num_fetches(); ++k) {
    const Fetch f = plan.GetFetch(k);
    EXPECT_EQ(f.index, k);
    EXPECT_TRUE(std::is_sorted(f.rows.begin(), f.rows.end())) << "fetch " << k;
    std::vector<int> seen(f.rows.size(), 0);
    for (size_t j = 0; j < f.batches.size(); ++j) {
      const auto& batch = f.batches[j];
      std::vector<int64_t> rows;
      for (int32_t pos : batch) {
        EXPECT_GE(pos, 0);
        EXPECT_LT(pos, static_cast<int32_t>(f.rows.size()));
        if (pos < 0 || pos >= static_cast<int32_t>(f.rows.size())) continue;
        ++seen[pos];
        rows.push_back(f.rows[pos]);
      }
      out.push_back(std::move(rows));
    }
    for (int s : seen) EXPECT_EQ(s, 1) << "fetch " << k << ": positions not a partition";
  }
  EXPECT_EQ(static_cast<int64_t>(out.size()), plan.num_batches());
  for (size_t i = 0; i + 1 < out.size(); ++i) {
    EXPECT_EQ(static_cast<int64_t>(out[i].size()), bs) << "batch " << i << " is not full";
  }
  int64_t cells = 0;
  for (const auto& b : out) cells += static_cast<int64_t>(b.size());
  EXPECT_EQ(cells, plan.num_cells());
  return out;
}

// The shuffled cell sequence of the epoch for this rank: with batch_size = fetch_factor = 1
// each fetch is one cell, so fetch k is position k of the sequence. The block order does not
// depend on batch_size or fetch_factor.
std::vector<int64_t> Sequence(const std::vector<int64_t>& sizes, SamplingConfig c,
                              int64_t epoch = 0, int rank = 0, int world = 1) {
  c.batch_size = 1;
  c.fetch_factor = 1;
  c.drop_last = false;
  const EpochPlan plan = MakeOk(sizes, c, epoch, rank, world);
  std::vector<int64_t> seq;
  for (int64_t k = 0; k < plan.num_fetches(); ++k) {
    const Fetch f = plan.GetFetch(k);
    EXPECT_EQ(f.rows.size(), 1u);
    if (!f.rows.empty()) seq.push_back(f.rows[0]);
  }
  return seq;
}

std::vector<int64_t> Flatten(const Batches& batches) {
  std::vector<int64_t> v;
  for (const auto& b : batches) v.insert(v.end(), b.begin(), b.end());
  return v;
}

int64_t Total(const std::vector<int64_t>& sizes) {
  return std::accumulate(sizes.begin(), sizes.end(), int64_t{0});
}

const std::vector<std::vector<int64_t>>& Layouts() {
  static const std::vector<std::vector<int64_t>> layouts = {
      {1},
      {7},
      {100},
      {1000},
      {997},
      {13, 0, 29},
      {0, 5, 0, 0, 11, 0},
      {31, 17, 1, 64, 3},
      {250, 251, 3, 0, 129, 77},
      {1009, 2, 517, 0, 333},
  };
  return layouts;
}

// ---------------------------------------------------------------------------------------
TEST(BlockPermutation, IsABijectionAndInvertible) {
  for (uint64_t n : {0ull, 1ull, 2ull, 3ull, 4ull, 5ull, 7ull, 8ull, 9ull, 31ull, 100ull, 1023ull,
                     1024ull, 1025ull, 4099ull}) {
    for (uint64_t key : {0ull, 1ull, 0xDEADBEEFull}) {
      plan_internal::BlockPermutation p(n, key);
      std::vector<char> hit(n, 0);
      for (uint64_t x = 0; x < n; ++x) {
        const uint64_t y = p.Forward(x);
        ASSERT_LT(y, n);
        ASSERT_FALSE(hit[y]) << "n=" << n << " collision";
        hit[y] = 1;
        ASSERT_EQ(p.Inverse(y), x);
      }
    }
  }
  // Large domains: inverse of forward, values in range.
  plan_internal::BlockPermutation big(uint64_t{1} << 40 | 12345, 42);
  for (uint64_t x = 0; x < 2000; ++x) {
    const uint64_t y = big.Forward(x * 7919);
    ASSERT_LT(y, big.size());
    ASSERT_EQ(big.Inverse(y), x * 7919);
  }
}

TEST(BlockPermutation, LooksUniform) {
  // Over many keys, the image of each element of [0, 10) is close to uniform, and the
  // permutation is not the identity.
  const uint64_t n = 10;
  std::vector<std::vector<int>> counts(n, std::vector<int>(n, 0));
  const int keys = 20000;
  int fixed_points = 0;
  for (int k = 0; k < keys; ++k) {
    plan_internal::BlockPermutation p(n, static_cast<uint64_t>(k) * 0x9E3779B97F4A7C15ull);
    for (uint64_t x = 0; x < n; ++x) {
      const uint64_t y = p.Forward(x);
      ++counts[x][y];
      fixed_points += (y == x);
    }
  }
  const double expected = static_cast<double>(keys) / n;
  for (uint64_t x = 0; x < n; ++x) {
    double chi2 = 0;
    for (uint64_t y = 0; y < n; ++y) {
      chi2 += (counts[x][y] - expected) * (counts[x][y] - expected) / expected;
    }
    EXPECT_LT(chi2, 40.0) << "x=" << x;  // 9 dof: p(chi2 > 40) ~ 1e-5
  }
  EXPECT_NEAR(fixed_points / static_cast<double>(keys), 1.0, 0.1);  // E = 1 for a random perm
}

// ---------------------------------------------------------------------------------------
TEST(EpochPlan, RejectsInvalidArguments) {
  const std::vector<int64_t> sizes = {10, 20};
  auto bad = [&](SamplingConfig c, int rank = 0, int world = 1,
                 std::vector<int64_t> s = {10, 20}) {
    auto r = EpochPlan::Make(s, c, 0, rank, world);
    EXPECT_FALSE(r.ok());
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalid);
      EXPECT_FALSE(r.status().message().empty());
    }
  };
  SamplingConfig c;
  c.batch_size = 0;
  bad(c);
  c = {};
  c.batch_size = -3;
  bad(c);
  c = {};
  c.block_size = 0;
  bad(c);
  c = {};
  c.fetch_factor = 0;
  bad(c);
  c = {};
  c.batch_size = int64_t{1} << 20;
  c.fetch_factor = int64_t{1} << 12;  // positions would not fit int32
  bad(c);
  bad(SamplingConfig{}, 0, 0);
  bad(SamplingConfig{}, 0, -1);
  bad(SamplingConfig{}, -1, 2);
  bad(SamplingConfig{}, 2, 2);
  bad(SamplingConfig{}, 0, 1, {10, -1, 5});
  bad(SamplingConfig{}, 0, 1, {std::numeric_limits<int64_t>::max(), 1});
  EXPECT_TRUE(EpochPlan::Make(sizes, SamplingConfig{}, 0, 1, 2).ok());
}

TEST(EpochPlan, EmptyCollectionGivesNothing) {
  for (auto rem : {RemainderPolicy::kPad, RemainderPolicy::kDrop}) {
    for (bool drop_last : {false, true}) {
      for (int world : {1, 3}) {
        for (const std::vector<int64_t>& sizes :
             {std::vector<int64_t>{}, std::vector<int64_t>{0}, std::vector<int64_t>{0, 0, 0}}) {
          SamplingConfig c;
          c.remainder = rem;
          c.drop_last = drop_last;
          for (int r = 0; r < world; ++r) {
            const EpochPlan p = MakeOk(sizes, c, 0, r, world);
            EXPECT_EQ(p.num_batches(), 0);
            EXPECT_EQ(p.num_fetches(), 0);
            EXPECT_EQ(p.num_cells(), 0);
            EXPECT_TRUE(p.GetFetch(0).rows.empty());
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
TEST(EpochPlan, EveryCellExactlyOncePerEpoch) {
  int configs = 0;
  for (const auto& sizes : Layouts()) {
    const int64_t n = Total(sizes);
    for (bool shuffle : {true, false}) {
      for (int64_t bs : {1, 3, 7, 64, 2000}) {
        for (int64_t b : {1, 2, 4, 5, 16, 1000000}) {
          for (int64_t f : {1, 2, 3, 16}) {
            SamplingConfig c;
            c.batch_size = bs;
            c.block_size = b;
            c.fetch_factor = f;
            c.shuffle = shuffle;
            c.seed = 1234;
            const EpochPlan p = MakeOk(sizes, c, 3);
            ASSERT_EQ(p.num_cells(), n);
            std::vector<int64_t> all = Flatten(CollectBatches(p));
            ASSERT_EQ(static_cast<int64_t>(all.size()), n);
            std::sort(all.begin(), all.end());
            for (int64_t i = 0; i < n; ++i) {
              ASSERT_EQ(all[i], i) << "shuffle=" << shuffle << " bs=" << bs << " b=" << b
                                   << " f=" << f << " n=" << n;
            }
            ++configs;
          }
        }
      }
    }
  }
  EXPECT_EQ(configs, 10 * 2 * 5 * 6 * 4);
}

TEST(EpochPlan, WithoutShuffleRowsStreamInOrder) {
  for (const auto& sizes : Layouts()) {
    SamplingConfig c;
    c.shuffle = false;
    c.batch_size = 7;
    c.block_size = 4;
    c.fetch_factor = 3;
    const std::vector<int64_t> all = Flatten(CollectBatches(MakeOk(sizes, c, 5)));
    ASSERT_EQ(static_cast<int64_t>(all.size()), Total(sizes));
    for (size_t i = 0; i < all.size(); ++i) ASSERT_EQ(all[i], static_cast<int64_t>(i));
  }
}

TEST(EpochPlan, FetchesAreSortedSlicesOfTheSequence) {
  // The rows of fetch k are exactly the sorted cells at positions [k*bs*f, (k+1)*bs*f) of
  // the epoch's block sequence, whatever bs and f.
  const std::vector<int64_t> sizes = {250, 251, 3, 0, 129, 77};
  SamplingConfig c;
  c.block_size = 4;
  c.seed = 99;
  const std::vector<int64_t> seq = Sequence(sizes, c, 2);
  ASSERT_EQ(seq.size(), 710u);
  for (int64_t bs : {1, 5, 64}) {
    for (int64_t f : {1, 3, 8}) {
      c.batch_size = bs;
      c.fetch_factor = f;
      const EpochPlan p = MakeOk(sizes, c, 2);
      for (int64_t k = 0; k < p.num_fetches(); ++k) {
        const int64_t begin = k * bs * f;
        const int64_t end = std::min<int64_t>(begin + bs * f, 710);
        std::vector<int64_t> expect(seq.begin() + begin, seq.begin() + end);
        std::sort(expect.begin(), expect.end());
        ASSERT_EQ(p.GetFetch(k).rows, expect) << "bs=" << bs << " f=" << f << " k=" << k;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
TEST(EpochPlan, BatchCounts) {
  for (const auto& sizes : Layouts()) {
    const int64_t n = Total(sizes);
    for (int64_t bs : {1, 2, 3, 10, 64, 5000}) {
      for (int64_t f : {1, 4}) {
        for (bool drop_last : {false, true}) {
          SamplingConfig c;
          c.batch_size = bs;
          c.fetch_factor = f;
          c.drop_last = drop_last;
          const EpochPlan p = MakeOk(sizes, c);
          const int64_t expect_batches = drop_last ? n / bs : (n + bs - 1) / bs;
          EXPECT_EQ(p.num_batches(), expect_batches) << "n=" << n << " bs=" << bs;
          EXPECT_EQ(p.num_cells(), drop_last ? n / bs * bs : n);
          EXPECT_EQ(p.num_fetches(), (p.num_cells() + bs * f - 1) / (bs * f));
          const Batches batches = CollectBatches(p);  // checks all full but the last
          ASSERT_EQ(static_cast<int64_t>(batches.size()), expect_batches);
          if (drop_last) {
            for (const auto& b : batches) EXPECT_EQ(static_cast<int64_t>(b.size()), bs);
          } else if (!batches.empty()) {
            const int64_t last = n % bs == 0 ? bs : n % bs;
            EXPECT_EQ(static_cast<int64_t>(batches.back().size()), last);
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// Global row -> (file, local row).
std::pair<size_t, int64_t> Locate(const std::vector<int64_t>& sizes, int64_t row) {
  for (size_t f = 0; f < sizes.size(); ++f) {
    if (row < sizes[f]) return {f, row};
    row -= sizes[f];
  }
  ADD_FAILURE() << "row out of range";
  return {0, 0};
}

TEST(EpochPlan, BlocksNeverStraddleFiles) {
  const std::vector<std::vector<int64_t>> layouts = {
      {10, 10, 10}, {13, 0, 29, 6}, {31, 17, 1, 64, 3}, {1009, 2, 517, 0, 333}};
  for (const auto& sizes : layouts) {
    for (int64_t b : {3, 4, 8, 50}) {
      SamplingConfig c;
      c.block_size = b;
      c.seed = 7;
      // The sequence is a concatenation of whole file-aligned blocks, each read forward:
      // a block starts at a local row that is a multiple of b and runs to min(start + b,
      // file size), entirely inside its file.
      const std::vector<int64_t> seq = Sequence(sizes, c, 1);
      ASSERT_EQ(static_cast<int64_t>(seq.size()), Total(sizes));
      size_t i = 0;
      int blocks = 0;
      while (i < seq.size()) {
        const auto [file, local] = Locate(sizes, seq[i]);
        ASSERT_EQ(local % b, 0) << "block does not start on a block boundary of its file";
        const int64_t len = std::min(b, sizes[file] - local);
        for (int64_t t = 0; t < len; ++t) {
          ASSERT_LT(i + t, seq.size());
          ASSERT_EQ(seq[i + t], seq[i] + t) << "block broken or straddles a file";
        }
        i += static_cast<size_t>(len);
        ++blocks;
      }
      int64_t expect_blocks = 0;
      for (int64_t s : sizes) expect_blocks += (s + b - 1) / b;
      EXPECT_EQ(blocks, expect_blocks);

      // Short blocks (file tails) come last, so every full block starts at a multiple of b
      // in the sequence.
      int64_t full_cells = 0;
      for (int64_t s : sizes) full_cells += s / b * b;
      for (int64_t pos = 0; pos < full_cells; pos += b) {
        const auto [file, local] = Locate(sizes, seq[pos]);
        ASSERT_EQ(local % b, 0);
        ASSERT_LE(local + b, sizes[file]) << "a short block inside the full-block region";
      }
      for (size_t pos = static_cast<size_t>(full_cells); pos < seq.size(); ++pos) {
        const auto [file, local] = Locate(sizes, seq[pos]);
        ASSERT_GE(local, sizes[file] / b * b) << "the tail region holds only file tails";
      }

      // Within each fetch the cells of any block form one contiguous run of its file: whole
      // blocks, except where a fetch boundary cuts the first or the last block of the fetch,
      // which cannot happen before the tail region when b divides the fetch size.
      for (int64_t f : {1, 2, 3}) {
        c.batch_size = 16;
        c.fetch_factor = f;
        const EpochPlan p = MakeOk(sizes, c, 1);
        for (int64_t k = 0; k < p.num_fetches(); ++k) {
          const Fetch fetch = p.GetFetch(k);
          std::map<std::pair<size_t, int64_t>, std::vector<int64_t>> by_block;
          for (int64_t row : fetch.rows) {
            const auto [file, local] = Locate(sizes, row);
            by_block[{file, local / b}].push_back(local);
          }
          int partial = 0;
          for (const auto& [key, locals] : by_block) {
            const int64_t lo = key.second * b;
            const int64_t hi = std::min(lo + b, sizes[key.first]);
            for (size_t t = 1; t < locals.size(); ++t) ASSERT_EQ(locals[t], locals[t - 1] + 1);
            ASSERT_LE(static_cast<int64_t>(locals.size()), hi - lo);
            if (static_cast<int64_t>(locals.size()) < hi - lo) {
              ++partial;
              // A cut block no longer than a fetch keeps its start (cut by the end of the
              // fetch) or its end (cut by the start of the fetch).
              if (hi - lo <= 16 * f) {
                EXPECT_TRUE(locals.front() == lo || locals.back() == hi - 1);
              }
            }
          }
          EXPECT_LE(partial, 2) << "fetch " << k;
          const int64_t fetch_end = (k + 1) * 16 * f;
          if ((16 * f) % b == 0 && fetch_end <= full_cells) {
            EXPECT_EQ(partial, 0) << "fetch " << k << " not aligned to blocks (b=" << b << ")";
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
TEST(EpochPlan, DeterministicAndSeededByEpochAndSeed) {
  const std::vector<int64_t> sizes = {1009, 2, 517, 0, 333};
  SamplingConfig c;
  c.batch_size = 16;
  c.block_size = 4;
  c.fetch_factor = 4;
  c.seed = 2024;
  const Batches a = CollectBatches(MakeOk(sizes, c, 5));
  const Batches a2 = CollectBatches(MakeOk(sizes, c, 5));
  EXPECT_EQ(a, a2);
  // The fetch rows too (the read plan), and fetch k alone equals fetch k in an iteration.
  const EpochPlan p = MakeOk(sizes, c, 5);
  const EpochPlan q = MakeOk(sizes, c, 5);
  for (int64_t k = p.num_fetches() - 1; k >= 0; --k) {
    const Fetch x = p.GetFetch(k);
    const Fetch y = q.GetFetch(k);
    EXPECT_EQ(x.rows, y.rows);
    EXPECT_EQ(x.batches, y.batches);
  }

  const Batches other_epoch = CollectBatches(MakeOk(sizes, c, 6));
  EXPECT_NE(a, other_epoch);
  EXPECT_NE(Sequence(sizes, c, 5), Sequence(sizes, c, 6));  // the block order changes too
  SamplingConfig c2 = c;
  c2.seed = 2025;
  const Batches other_seed = CollectBatches(MakeOk(sizes, c2, 5));
  EXPECT_NE(a, other_seed);
  EXPECT_NE(Sequence(sizes, c, 5), Sequence(sizes, c2, 5));

  // Epochs differ from each other (the reference implementation can repeat an order).
  std::set<std::vector<int64_t>> orders;
  for (int64_t e = 0; e < 20; ++e) orders.insert(Flatten(CollectBatches(MakeOk(sizes, c, e))));
  EXPECT_EQ(orders.size(), 20u);

  // The in-fetch shuffle changes the yield order, not the read plan.
  const Fetch f0 = p.GetFetch(0);
  std::vector<int32_t> yielded;
  for (const auto& b : f0.batches) yielded.insert(yielded.end(), b.begin(), b.end());
  std::vector<int32_t> identity(yielded.size());
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_NE(yielded, identity);
  // ... and each fetch is shuffled with its own seed.
  const Fetch f1 = p.GetFetch(1);
  ASSERT_EQ(f1.rows.size(), f0.rows.size());
  EXPECT_NE(f0.batches, f1.batches);
}

// Pins the exact plan, so that a change of the algorithm (or a platform that computes it
// differently) is noticed: plans must be bit-identical everywhere, or resuming a run
// elsewhere changes the data order. Update the constant only for a deliberate change.
TEST(EpochPlan, GoldenPlan) {
  SamplingConfig c;
  c.batch_size = 8;
  c.block_size = 4;
  c.fetch_factor = 4;
  c.seed = 42;
  const EpochPlan p = MakeOk({100, 37, 0, 250}, c, 3, 1, 2);
  uint64_t h = 1469598103934665603ull;  // FNV-1a over rows and batch positions
  auto eat = [&h](uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xFF;
      h *= 1099511628211ull;
    }
  };
  std::ostringstream first;
  for (int64_t k = 0; k < p.num_fetches(); ++k) {
    const Fetch f = p.GetFetch(k);
    for (int64_t r : f.rows) eat(static_cast<uint64_t>(r));
    for (const auto& b : f.batches) {
      for (int32_t pos : b) {
        eat(static_cast<uint64_t>(pos));
        if (k == 0 && first.tellp() < 60) first << f.rows[pos] << ' ';
      }
    }
  }
  RecordProperty("golden_first_rows", first.str());
  EXPECT_EQ(h, 8347268086005472348ull) << "first rows: " << first.str();
}

// ---------------------------------------------------------------------------------------
TEST(EpochPlan, ShardingAcrossRanks) {
  const std::vector<std::vector<int64_t>> layouts = {
      {1}, {2}, {5}, {7, 0, 4}, {31, 17, 1, 64, 3}, {1009, 2, 517, 0, 333}, {256}};
  for (const auto& sizes : layouts) {
    const int64_t n = Total(sizes);
    for (int world : {2, 3, 4}) {
      for (auto rem : {RemainderPolicy::kPad, RemainderPolicy::kDrop}) {
        for (bool drop_last : {false, true}) {
          for (int64_t bs : {1, 4, 10}) {
            SamplingConfig c;
            c.batch_size = bs;
            c.block_size = 4;
            c.fetch_factor = 2;
            c.remainder = rem;
            c.drop_last = drop_last;
            c.seed = 11;
            const std::vector<int64_t> global = Sequence(sizes, c, 4);
            std::vector<int64_t> counts(n, 0);
            int64_t batches0 = -1;
            for (int r = 0; r < world; ++r) {
              const EpochPlan p = MakeOk(sizes, c, 4, r, world);
              if (r == 0) batches0 = p.num_batches();
              EXPECT_EQ(p.num_batches(), batches0) << "unequal batch counts hang DDP";
              const std::vector<int64_t> cells = Flatten(CollectBatches(p));
              for (int64_t row : cells) {
                ASSERT_GE(row, 0);
                ASSERT_LT(row, n);
                ++counts[row];
              }
              // The rank's slice is a contiguous piece of the global sequence.
              const std::vector<int64_t> seq = Sequence(sizes, c, 4, r, world);
              const int64_t slice = rem == RemainderPolicy::kPad ? (n + world - 1) / world
                                                                 : n / world;
              ASSERT_EQ(static_cast<int64_t>(seq.size()), slice);
              for (int64_t i = 0; i < slice; ++i) {
                ASSERT_EQ(seq[i], global[(r * slice + i) % n]);
              }
            }
            int64_t missing = 0, duplicates = 0;
            for (int64_t cnt : counts) {
              missing += cnt == 0;
              duplicates += cnt > 1 ? cnt - 1 : 0;
            }
            if (!drop_last) {
              if (rem == RemainderPolicy::kDrop) {
                EXPECT_EQ(duplicates, 0);
                EXPECT_LT(missing, world);
                EXPECT_EQ(missing, n % world);
              } else {
                EXPECT_EQ(missing, 0);
                EXPECT_LT(duplicates, world);
                EXPECT_EQ(duplicates, (world - n % world) % world);
              }
            } else if (rem == RemainderPolicy::kDrop) {
              EXPECT_EQ(duplicates, 0);
            }
          }
        }
      }
    }
  }
}

TEST(EpochPlan, FetchOfBatchMatchesIteration) {
  for (const auto& sizes : Layouts()) {
    for (int64_t f : {1, 3, 16}) {
      for (bool drop_last : {false, true}) {
        SamplingConfig c;
        c.batch_size = 5;
        c.fetch_factor = f;
        c.drop_last = drop_last;
        for (int world : {1, 3}) {
          const EpochPlan p = MakeOk(sizes, c, 1, world - 1, world);
          int64_t batch = 0;
          for (int64_t k = 0; k < p.num_fetches(); ++k) {
            const Fetch fetch = p.GetFetch(k);
            for (size_t j = 0; j < fetch.batches.size(); ++j, ++batch) {
              ASSERT_EQ(p.FetchOfBatch(batch), k);
              ASSERT_EQ(p.BatchInFetch(batch), static_cast<int64_t>(j));
            }
          }
          EXPECT_EQ(batch, p.num_batches());
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// Table 2 of the scDataset paper: mean per-batch Shannon entropy (bits) of the plate label,
// batch 64, by block size b and fetch factor f, on Tahoe-100M's 14 plates. The reproduction
// uses 14 plates scaled down ~70x (unequal sizes, ratio ~0.54 smallest/largest like
// 5-9M cells); the label of a cell is its file.
TEST(EpochPlan, EntropyReproducesTable2) {
  const std::vector<int64_t> plates = {90113, 72031, 115007, 84211, 106009, 67103, 124001,
                                       80021, 100003, 89017, 110119, 75041, 120007, 86011};
  std::vector<int64_t> ends(plates.size());
  std::partial_sum(plates.begin(), plates.end(), ends.begin());

  struct Stats {
    double mean, std;
    int64_t batches;
  };
  auto measure = [&](int64_t b, int64_t f) {
    SamplingConfig c;
    c.batch_size = 64;
    c.block_size = b;
    c.fetch_factor = f;
    c.drop_last = true;  // only full batches of 64
    c.seed = 20250101;
    const EpochPlan p = MakeOk(plates, c, 0);
    double sum = 0, sum2 = 0;
    int64_t count = 0;
    std::vector<int> label_of;
    int hist[14];
    for (int64_t k = 0; k < p.num_fetches(); ++k) {
      const Fetch fetch = p.GetFetch(k);
      label_of.resize(fetch.rows.size());
      int label = 0;
      for (size_t i = 0; i < fetch.rows.size(); ++i) {  // rows ascending
        while (fetch.rows[i] >= ends[label]) ++label;
        label_of[i] = label;
      }
      for (const auto& batch : fetch.batches) {
        std::fill(std::begin(hist), std::end(hist), 0);
        for (int32_t pos : batch) ++hist[label_of[pos]];
        double h = 0;
        const double m = static_cast<double>(batch.size());
        for (int cnt : hist) {
          if (cnt > 0) h -= cnt / m * std::log2(cnt / m);
        }
        sum += h;
        sum2 += h * h;
        ++count;
      }
    }
    const double mean = sum / count;
    return Stats{mean, std::sqrt(std::max(0.0, sum2 / count - mean * mean)), count};
  };

  // The layout must make random sampling (b = 1, f = 1) give the paper's 3.62-3.63 bits.
  const Stats random = measure(1, 1);
  std::cout << "random sampling (b=1, f=1): " << std::fixed << std::setprecision(4)
            << random.mean << " +- " << random.std << " bits over " << random.batches
            << " batches\n";
  EXPECT_GE(random.mean, 3.62);
  EXPECT_LE(random.mean, 3.63);
  RecordProperty("random_sampling_entropy", std::to_string(random.mean));

  const int64_t bs_[4] = {4, 8, 16, 32};
  const int64_t fs_[4] = {4, 8, 16, 32};
  const double paper[4][4] = {{3.51, 3.56, 3.59, 3.60},
                              {3.34, 3.48, 3.55, 3.59},
                              {3.00, 3.33, 3.48, 3.54},
                              {2.47, 3.00, 3.32, 3.48}};
  std::ostringstream table;
  table << "mean entropy (bits) +- std over batches, batch 64; [paper]\n"
        << "  b \\ f |           4 |           8 |          16 |          32\n";
  double worst = 0;
  for (int i = 0; i < 4; ++i) {
    table << std::setw(7) << bs_[i] << " |";
    for (int j = 0; j < 4; ++j) {
      const Stats s = measure(bs_[i], fs_[j]);
      table << std::fixed << std::setprecision(3) << ' ' << s.mean << "+-" << std::setprecision(2)
            << s.std << " [" << paper[i][j] << "]";
      worst = std::max(worst, std::abs(s.mean - paper[i][j]));
      EXPECT_NEAR(s.mean, paper[i][j], 0.03) << "b=" << bs_[i] << " f=" << fs_[j];
      RecordProperty("entropy_b" + std::to_string(bs_[i]) + "_f" + std::to_string(fs_[j]),
                     std::to_string(s.mean) + " +- " + std::to_string(s.std));
    }
    table << '\n';
  }
  table << "largest |ours - paper| = " << std::setprecision(3) << worst << " bits\n";
  std::cout << table.str();
}

}  // namespace
}  // namespace cellfeed

// Variable blocks (one per storage chunk): blocks given as start rows.
namespace cellfeed {
namespace {

// Random block starts for `sizes`: every file starts a block, others at random.
std::vector<int64_t> RandomStarts(const std::vector<int64_t>& sizes, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int64_t> starts;
  int64_t at = 0;
  for (int64_t s : sizes) {
    for (int64_t r = 0; r < s; ++r) {
      if (r == 0 || rng() % 5 == 0) starts.push_back(at + r);
    }
    at += s;
  }
  return starts;
}

TEST(EpochPlanVariableBlocks, EveryCellOnceAndBlocksStayContiguous) {
  const std::vector<std::vector<int64_t>> layouts = {{1}, {40}, {7, 0, 13}, {300, 1, 77}};
  for (const auto& sizes : layouts) {
    const int64_t n = Total(sizes);
    const std::vector<int64_t> starts = RandomStarts(sizes, static_cast<uint32_t>(n));
    std::vector<int64_t> block_of(n);  // block id of each row
    for (size_t i = 0; i < starts.size(); ++i) {
      const int64_t end = i + 1 < starts.size() ? starts[i + 1] : n;
      for (int64_t r = starts[i]; r < end; ++r) block_of[r] = static_cast<int64_t>(i);
    }
    for (int64_t bs : {1, 5, 64}) {
      for (int64_t f : {1, 3}) {
        SamplingConfig c;
        c.batch_size = bs;
        c.fetch_factor = f;
        c.chunk_blocks = true;
        c.seed = 5;
        auto made = EpochPlan::Make(sizes, c, 2, 0, 1, starts);
        ASSERT_TRUE(made.ok()) << made.status().message();
        std::vector<int64_t> all = Flatten(CollectBatches(*made));
        std::sort(all.begin(), all.end());
        ASSERT_EQ(static_cast<int64_t>(all.size()), n);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(all[i], i);
        // In the sequence each block's rows come together, in order.
        SamplingConfig one = c;
        one.batch_size = one.fetch_factor = 1;
        auto seq_plan = EpochPlan::Make(sizes, one, 2, 0, 1, starts);
        ASSERT_TRUE(seq_plan.ok());
        std::vector<int64_t> seq;
        for (int64_t k = 0; k < seq_plan->num_fetches(); ++k) seq.push_back(seq_plan->GetFetch(k).rows[0]);
        for (size_t i = 1; i < seq.size(); ++i) {
          if (block_of[seq[i]] == block_of[seq[i - 1]]) {
            EXPECT_EQ(seq[i], seq[i - 1] + 1);
          } else {
            EXPECT_EQ(seq[i], starts[block_of[seq[i]]]) << "a block entered mid-way";
          }
        }
      }
    }
  }
}

TEST(EpochPlanVariableBlocks, ShuffledSeededAndShardable) {
  const std::vector<int64_t> sizes = {500, 333};
  const std::vector<int64_t> starts = RandomStarts(sizes, 9);
  SamplingConfig c;
  c.batch_size = 8;
  c.fetch_factor = 2;
  c.chunk_blocks = true;
  auto seq = [&](int64_t epoch, int rank, int world, uint64_t seed) {
    SamplingConfig s = c;
    s.seed = seed;
    auto p = EpochPlan::Make(sizes, s, epoch, rank, world, starts);
    EXPECT_TRUE(p.ok());
    return Flatten(CollectBatches(*p));
  };
  EXPECT_EQ(seq(0, 0, 1, 1), seq(0, 0, 1, 1));
  EXPECT_NE(seq(0, 0, 1, 1), seq(1, 0, 1, 1));
  EXPECT_NE(seq(0, 0, 1, 1), seq(0, 0, 1, 2));
  // The block order is shuffled: the first block in the sequence is rarely block 0.
  int first_is_zero = 0;
  for (int64_t e = 0; e < 20; ++e) first_is_zero += seq(e, 0, 1, 1)[0] == 0;
  EXPECT_LT(first_is_zero, 5);
  // Three ranks (padding): every cell, fewer than 3 seen twice, equal batch counts.
  std::vector<int> counts(833, 0);
  for (int r = 0; r < 3; ++r) {
    for (int64_t row : seq(0, r, 3, 1)) ++counts[row];
  }
  int dup = 0;
  for (int cnt : counts) {
    EXPECT_GE(cnt, 1);
    dup += cnt - 1;
  }
  EXPECT_EQ(dup, (3 - 833 % 3) % 3);
}

TEST(EpochPlanVariableBlocks, RejectsBadStarts) {
  SamplingConfig c;
  c.chunk_blocks = true;
  EXPECT_FALSE(EpochPlan::Make({10}, c, 0, 0, 1).ok());              // none given
  EXPECT_FALSE(EpochPlan::Make({10}, c, 0, 0, 1, {1, 5}).ok());      // not from row 0
  EXPECT_FALSE(EpochPlan::Make({10}, c, 0, 0, 1, {0, 5, 5}).ok());   // not ascending
  EXPECT_FALSE(EpochPlan::Make({10}, c, 0, 0, 1, {0, 10}).ok());     // past the end
  EXPECT_FALSE(EpochPlan::Make({5, 5}, c, 0, 0, 1, {0, 3}).ok());    // straddles files
  EXPECT_TRUE(EpochPlan::Make({5, 5}, c, 0, 0, 1, {0, 3, 5}).ok());
}

}  // namespace
}  // namespace cellfeed
