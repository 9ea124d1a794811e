// The loader pipeline on a real file (data/real/pbmc68k_reduced_scanpy1.h5ad, 700 cells,
// dense gzip X): coverage, determinism across thread counts, resume, stop from another
// thread. Values are checked against direct Collection reads here; against anndata in
// tests/python. Run under TSan by scripts/sanitize.sh.
#include "cellfeed/loader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

using namespace cellfeed;

namespace {

std::string RealFile() {
  const char* dir = std::getenv("CELLFEED_TEST_DATA");
  return std::string(dir ? dir : "data") + "/real/pbmc68k_reduced_scanpy1.h5ad";
}

std::shared_ptr<Collection> Open(int threads) {
  OpenOptions o;
  o.threads = threads;
  auto c = Collection::Open({RealFile()}, o);
  EXPECT_TRUE(c.ok()) << c.status().message();
  return c.value();
}

struct Seen {
  std::vector<int64_t> rows;
  std::vector<float> values;  // all batches' data, in order
  int64_t batches = 0;
};

Seen Drain(Loader& l, int64_t epoch, int64_t start = 0) {
  Seen s;
  EXPECT_TRUE(l.Start(epoch, start).ok());
  for (;;) {
    auto b = l.Next();
    EXPECT_TRUE(b.ok()) << b.status().message();
    if (!b.ok() || !b.value()) break;
    const Batch& batch = *b.value();
    const CsrMatrix& m = *batch.fetch;
    s.rows.insert(s.rows.end(), batch.fetch_rows->begin() + batch.row_begin,
                  batch.fetch_rows->begin() + batch.row_end);
    s.values.insert(s.values.end(), m.data.begin() + m.indptr[batch.row_begin],
                    m.data.begin() + m.indptr[batch.row_end]);
    ++s.batches;
  }
  return s;
}

LoaderOptions Options() {
  LoaderOptions o;
  o.sampling.batch_size = 64;
  o.sampling.block_size = 4;
  o.sampling.fetch_factor = 3;
  o.sampling.seed = 7;
  o.obs_columns = {"bulk_labels"};
  return o;
}

TEST(Loader, EveryCellOncePerEpochAndValuesMatchDirectReads) {
  auto col = Open(2);
  auto l = Loader::Make(col, Options());
  ASSERT_TRUE(l.ok()) << l.status().message();
  Seen s = Drain(*l.value(), 0);
  EXPECT_EQ(s.batches, (700 + 63) / 64);
  EXPECT_EQ(s.batches, l.value()->num_batches());
  std::vector<int64_t> sorted = s.rows;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 700; ++i) ASSERT_EQ(sorted[i], i);
  auto direct = col->Read(s.rows);
  ASSERT_TRUE(direct.ok());
  EXPECT_TRUE(std::equal(s.values.begin(), s.values.end(), direct->data.begin(),
                         direct->data.end()));
}

TEST(Loader, SameBatchesWithOneTwoAndFourThreads) {
  std::vector<Seen> runs;
  for (int t : {1, 2, 4}) {
    auto l = Loader::Make(Open(t), Options());
    ASSERT_TRUE(l.ok());
    runs.push_back(Drain(*l.value(), 3));
  }
  for (size_t i = 1; i < runs.size(); ++i) {
    EXPECT_EQ(runs[i].rows, runs[0].rows);
    EXPECT_EQ(runs[i].values, runs[0].values);
  }
  auto l = Loader::Make(Open(2), Options());
  EXPECT_NE(Drain(*l.value(), 4).rows, runs[0].rows);  // another epoch, another order
}

TEST(Loader, ResumeYieldsTheRemainder) {
  auto col = Open(2);
  auto l = Loader::Make(col, Options());
  Seen all = Drain(*l.value(), 1);
  for (int64_t k : {0, 2, 3, 5, 11}) {
    Seen rest = Drain(*l.value(), 1, k);
    EXPECT_EQ(rest.batches, all.batches - k);
    EXPECT_TRUE(std::equal(rest.rows.begin(), rest.rows.end(), all.rows.end() - rest.rows.size()))
        << "resume at " << k;
  }
}

TEST(Loader, StopFromAnotherThreadEndsTheEpochCleanly) {
  for (int rep = 0; rep < 20; ++rep) {
    auto l = Loader::Make(Open(2), Options());
    ASSERT_TRUE(l.value()->Start(0).ok());
    std::thread stopper([&] { l.value()->Stop(); });
    for (int i = 0; i < 100; ++i) {
      auto b = l.value()->Next();
      ASSERT_TRUE(b.ok());
      if (!b.value()) break;
    }
    stopper.join();
    Seen again = Drain(*l.value(), 0);  // usable afterwards
    EXPECT_EQ(again.rows.size(), 700u);
  }
}

TEST(Loader, BatchesOutliveTheLoader) {
  std::optional<Batch> kept;
  {
    auto l = Loader::Make(Open(2), Options());
    ASSERT_TRUE(l.value()->Start(0).ok());
    kept = *l.value()->Next().value();
  }
  const CsrMatrix& m = *kept->fetch;
  EXPECT_EQ(kept->size(), 64);
  EXPECT_GE(m.indptr[kept->row_end], m.indptr[kept->row_begin]);
}

}  // namespace
