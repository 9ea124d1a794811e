// Tests of the transform samplers and gene mapping, against their definitions: sample
// moments within tolerances of 5 standard errors derived from the distributions.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "cellfeed/transform.h"
#include "transform/cell_rng.h"

namespace cellfeed::transform {
namespace {

constexpr double kZ = 5.0;

struct Moments {
  double mean = 0, var = 0;
};

template <typename F>
Moments Sample(int n, F draw) {
  double s = 0, s2 = 0;
  for (int i = 0; i < n; ++i) {
    const double x = draw(i);
    s += x;
    s2 += x * x;
  }
  Moments m;
  m.mean = s / n;
  m.var = s2 / n - m.mean * m.mean;
  return m;
}

// Binomial(n, p) over the pieces of 512 trials and the p > 1/2 symmetry: mean n p,
// variance n p q; the sample variance's standard error from mu4 = npq(1 + 3(n-2)pq).
TEST(CellRng, BinomialMomentsAcrossPiecesAndSymmetry) {
  for (auto [n, p] : {std::pair<int64_t, double>{1, 0.3}, {7, 0.5}, {100, 0.05},
                      {511, 0.4}, {513, 0.4}, {5000, 0.7}, {20000, 0.01}}) {
    const int draws = 20000;
    CellRng rng(CellStreamKey(1, 2, static_cast<uint64_t>(n), kPurposeThin));
    Moments m = Sample(draws, [&](int) {
      const int64_t k = rng.Binomial(n, p);
      EXPECT_GE(k, 0);
      EXPECT_LE(k, n);
      return static_cast<double>(k);
    });
    const double q = 1 - p, npq = n * p * q;
    const double mu4 = npq * (1 + 3 * (n - 2) * p * q);
    EXPECT_NEAR(m.mean, n * p, kZ * std::sqrt(npq / draws)) << n << " " << p;
    EXPECT_NEAR(m.var, npq, kZ * std::sqrt((mu4 - npq * npq) / draws) + 1e-9) << n << " " << p;
  }
}

TEST(CellRng, BinomialEdges) {
  CellRng rng(42);
  EXPECT_EQ(rng.Binomial(0, 0.5), 0);
  EXPECT_EQ(rng.Binomial(10, 0.0), 0);
  EXPECT_EQ(rng.Binomial(10, 1.0), 10);
  EXPECT_EQ(rng.Binomial(-3, 0.5), 0);
}

// The integer form decides every draw as the double one does, at the probabilities the
// presets use, at awkward ones and at the ends; and for draws right at the boundary.
TEST(CellRng, BernoulliBelowEqualsBernoulli) {
  for (double p : {0.0, 1e-300, 0.03, 0.15, 0.3, 0.4, 0.5, 1.0 / 3.0, 0.1 + 0.2, 1 - 1e-16, 1.0, 2.0, -1.0}) {
    CellRng a(CellStreamKey(3, 1, 7, kPurposeValueMask)), b(CellStreamKey(3, 1, 7, kPurposeValueMask));
    const uint64_t bound = CellRng::BernoulliBound(p);
    for (int i = 0; i < 200000; ++i) ASSERT_EQ(a.Bernoulli(p), b.BernoulliBelow(bound)) << p << " " << i;
    // k = bound - 1 and k = bound: Uniform() of them straddles p.
    if (bound > 0 && bound < (uint64_t{1} << 53)) {
      EXPECT_LT(static_cast<double>(bound - 1) * 0x1.0p-53, p) << p;
      EXPECT_GE(static_cast<double>(bound) * 0x1.0p-53, p) << p;
    }
  }
}

// Beta(a, b): mean a/(a+b), variance ab/((a+b)^2(a+b+1)); the sample variance's
// standard error from the fourth central moment
// mu4 = 3ab(ab(a+b-6) + 2(a+b)^2) / ((a+b)^4 (a+b+1)(a+b+2)(a+b+3)).
TEST(CellRng, BetaMoments) {
  for (auto [a, b] : {std::pair<int, int>{2, 2}, {1, 1}, {5, 2}}) {
    const int draws = 40000;
    CellRng rng(CellStreamKey(3, 0, static_cast<uint64_t>(a * 10 + b), kPurposeRda));
    Moments m = Sample(draws, [&](int) { return rng.Beta(a, b); });
    const double s = a + b, mean = a / s, var = a * b / (s * s * (s + 1));
    const double mu4 = 3.0 * a * b * (a * b * (s - 6) + 2 * s * s) /
                       (s * s * s * s * (s + 1) * (s + 2) * (s + 3));
    EXPECT_NEAR(m.mean, mean, kZ * std::sqrt(var / draws));
    EXPECT_NEAR(m.var, var, kZ * std::sqrt((mu4 - var * var) / draws));
  }
}

// Failures before a success of Bernoulli(p): mean (1-p)/p.
TEST(CellRng, GeometricGapMean) {
  const double p = 0.03;
  const int draws = 40000;
  CellRng rng(7);
  Moments m = Sample(draws, [&](int) { return static_cast<double>(rng.GeometricGap(std::log1p(-p))); });
  const double mean = (1 - p) / p, var = (1 - p) / (p * p);
  EXPECT_NEAR(m.mean, mean, kZ * std::sqrt(var / draws));
}

TEST(CellRng, StreamsDifferByEveryKeyPart) {
  std::set<uint64_t> seen;
  for (uint64_t seed : {0, 1})
    for (int64_t epoch : {0, 1})
      for (uint64_t cell : {0, 1, 2})
        for (uint64_t purpose : {kPurposeThin, kPurposeRda})
          seen.insert(CellRng(CellStreamKey(seed, epoch, cell, purpose)).Bits());
  EXPECT_EQ(seen.size(), 24u);
}

TEST(GeneMap, EnsemblIdsAndVersions) {
  EXPECT_TRUE(LooksLikeEnsemblId("ENSG00000141510"));
  EXPECT_TRUE(LooksLikeEnsemblId("ENSMUSG00000000001.4"));
  EXPECT_FALSE(LooksLikeEnsemblId("TP53"));
  EXPECT_FALSE(LooksLikeEnsemblId("ENSG"));
  EXPECT_EQ(StripEnsemblVersion("ENSG00000141510.17"), "ENSG00000141510");
  EXPECT_EQ(StripEnsemblVersion("ENSG00000182378.14_PAR_Y"), "ENSG00000182378");
  EXPECT_EQ(StripEnsemblVersion("TP53.1"), "TP53.1");
}

TEST(GeneMap, FilesThatMapAlikeShareOneMap) {
  VocabSpec spec;
  spec.genes = {"", "TP53", "EGFR", "MYC"};
  // files 0 and 2 hold the same genes in the same columns (plates of one experiment),
  // file 1 others: two distinct maps, file 2 using file 0's.
  std::vector<std::vector<std::string>> ids = {{"TP53", "MYC"}, {"EGFR", "MYC"}, {"TP53", "MYC"}};
  std::vector<std::vector<int32_t>> cols = {{0, 1}, {2, 1}, {0, 1}};
  auto r = MapGeneIds({"f0", "f1", "f2"}, ids, cols, {"a", "b", "c"}, {0, 10, 20, 30}, spec);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const GeneMap& m = *r;
  EXPECT_EQ(m.column_to_vocab.size(), 2u);
  EXPECT_EQ(m.present.size(), 2u);
  EXPECT_EQ(m.map_of_file, (std::vector<uint32_t>{0, 1, 0}));
  EXPECT_EQ(m.ColumnToVocab(2), (std::vector<int32_t>{1, 3, -1}));
  EXPECT_EQ(m.ColumnToVocab(1), (std::vector<int32_t>{-1, 3, 2}));
  EXPECT_EQ(m.Present(2), (std::vector<uint8_t>{0, 1, 0, 1}));
  EXPECT_EQ(m.Present(1), (std::vector<uint8_t>{0, 0, 1, 1}));
  EXPECT_EQ(m.reports.size(), 3u);  // still one report per file
  EXPECT_EQ(m.reports[2].file, "f2");
}

TEST(GeneMap, DuplicatesAbsentAndTranslation) {
  VocabSpec spec;
  spec.genes = {"", "TP53", "EGFR", "MYC"};
  spec.id_symbol = {{"ENSG00000141510", "TP53"}, {"ENSG00000146648", "EGFR"}};
  // file 0: symbols, two on TP53; file 1: IDs; collection columns 0..4
  std::vector<std::vector<std::string>> ids = {{"TP53", "MYC", "TP53"},
                                               {"ENSG00000146648.3", "ENSG00000999999"}};
  std::vector<std::vector<int32_t>> cols = {{0, 1, 2}, {3, 4}};
  auto r = MapGeneIds({"f0", "f1"}, ids, cols, {"a", "b", "c", "d", "e"}, {0, 10, 20}, spec);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const GeneMap& m = *r;
  EXPECT_EQ(m.ColumnToVocab(0), (std::vector<int32_t>{1, 3, 1, -1, -1}));
  EXPECT_EQ(m.ColumnToVocab(1), (std::vector<int32_t>{-1, -1, -1, 2, -1}));
  EXPECT_EQ(m.Present(0), (std::vector<uint8_t>{0, 1, 0, 1}));
  EXPECT_EQ(m.Present(1), (std::vector<uint8_t>{0, 0, 1, 0}));
  EXPECT_EQ(m.column_to_vocab.size(), 2u);  // different maps: one each
  EXPECT_EQ(m.reports[0].summed, 2);
  EXPECT_EQ(m.reports[0].vocab_missing, 1);
  EXPECT_EQ(m.reports[1].translated, 1);
  EXPECT_EQ(m.reports[1].unmapped_examples, std::vector<std::string>{"ENSG00000999999"});
  EXPECT_EQ(m.FileOf(9), 0u);
  EXPECT_EQ(m.FileOf(10), 1u);
  auto none = MapGeneIds({"alien.h5ad"}, {{"zz1", "zz2"}}, {{0, 1}}, {"a", "b"}, {0, 5}, spec);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("alien.h5ad"), std::string::npos);
  EXPECT_NE(none.status().message().find("'zz1'"), std::string::npos);
  EXPECT_NE(none.status().message().find("'TP53'"), std::string::npos);
}

}  // namespace
}  // namespace cellfeed::transform
