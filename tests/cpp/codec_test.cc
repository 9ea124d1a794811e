// Decoders against independent encoders: zlib's compress2, liblzf's lzf_compress,
// and a direct re-implementation of the shuffle layout.
#include <gtest/gtest.h>
#include <lzf.h>
#include <zlib.h>

#include <cstring>
#include <numeric>
#include <random>

#include "io/codec/codecs.h"
#include "io/codec/filter_pipeline.h"

using namespace cellfeed;
using namespace cellfeed::io::codec;

namespace {

std::vector<uint8_t> Counts(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng() % 7);
  std::vector<uint8_t> bytes(n * 4);
  std::memcpy(bytes.data(), v.data(), bytes.size());
  return bytes;
}

std::vector<uint8_t> ZlibCompress(const std::vector<uint8_t>& in, int level) {
  uLongf n = compressBound(in.size());
  std::vector<uint8_t> out(n);
  EXPECT_EQ(compress2(out.data(), &n, in.data(), in.size(), level), Z_OK);
  out.resize(n);
  return out;
}

std::vector<uint8_t> Shuffle(const std::vector<uint8_t>& in, size_t es) {
  std::vector<uint8_t> out(in);
  size_t n = in.size() / es;
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < es; ++j) out[j * n + i] = in[i * es + j];
  return out;
}

}  // namespace

TEST(Deflate, RoundTripsZlibStreams) {
  for (int level : {1, 4, 9}) {
    auto raw = Counts(10000, level);
    std::vector<uint8_t> out;
    ASSERT_TRUE(InflateZlib(ZlibCompress(raw, level), raw.size(), out).ok());
    EXPECT_EQ(out, raw);
  }
}

TEST(Deflate, CorruptStreamIsInvalid) {
  auto raw = Counts(5000, 3);
  auto z = ZlibCompress(raw, 4);
  for (size_t i = 10; i < z.size(); i += 7) z[i] ^= 0x5a;
  std::vector<uint8_t> out;
  Status st = InflateZlib(z, raw.size(), out);
  EXPECT_EQ(st.code(), StatusCode::kInvalid);
}

TEST(Deflate, OutputLargerThanChunkIsInvalid) {
  auto raw = Counts(1000, 4);
  std::vector<uint8_t> out;
  EXPECT_EQ(InflateZlib(ZlibCompress(raw, 4), raw.size() - 1, out).code(), StatusCode::kInvalid);
}

TEST(Deflate, PrefixMatchesTheStreamsFirstBytes) {
  auto raw = Counts(20000, 5);
  auto z = ZlibCompress(raw, 4);
  for (size_t n : {size_t{0}, size_t{1}, size_t{4}, size_t{999}, size_t{30001}, raw.size()}) {
    std::vector<uint8_t> out;
    ASSERT_TRUE(InflateZlibPrefix(z, n, out).ok()) << n;
    ASSERT_EQ(out.size(), n);
    EXPECT_TRUE(std::equal(out.begin(), out.end(), raw.begin())) << n;
  }
}

TEST(Deflate, PrefixOfBrokenStreamsIsInvalid) {
  auto raw = Counts(20000, 6);
  auto z = ZlibCompress(raw, 4);
  std::vector<uint8_t> out;
  // Longer than the stream's output.
  EXPECT_EQ(InflateZlibPrefix(z, raw.size() + 1, out).code(), StatusCode::kInvalid);
  // Input cut before the bytes asked for.
  std::vector<uint8_t> cut(z.begin(), z.begin() + z.size() / 4);
  EXPECT_EQ(InflateZlibPrefix(cut, raw.size() / 2, out).code(), StatusCode::kInvalid);
  // Not a zlib stream at all.
  std::vector<uint8_t> junk(z.size(), 0xff);
  Status st = InflateZlibPrefix(junk, 100, out);
  EXPECT_EQ(st.code(), StatusCode::kInvalid);
  EXPECT_NE(st.message().find("corrupt deflate stream"), std::string::npos) << st.message();
}

TEST(FilterPipeline, PrefixDecodingOnlyForDeflateAlone) {
  auto deflate = FilterPipeline::Make({{1, "deflate", {4}}}, 4);
  auto shuffled = FilterPipeline::Make({{2, "shuffle", {4}}, {1, "deflate", {4}}}, 4);
  auto checked = FilterPipeline::Make({{1, "deflate", {4}}, {3, "fletcher32", {}}}, 4);
  ASSERT_TRUE(deflate.ok() && shuffled.ok() && checked.ok());
  EXPECT_TRUE(deflate->CanDecodePrefix(0));
  EXPECT_FALSE(deflate->CanDecodePrefix(0b1));  // deflate skipped: stored raw
  EXPECT_FALSE(shuffled->CanDecodePrefix(0));
  EXPECT_TRUE(shuffled->CanDecodePrefix(0b1));  // shuffle skipped for this chunk
  EXPECT_FALSE(checked->CanDecodePrefix(0));
  auto raw = Counts(4096, 9);
  std::vector<uint8_t> out;
  ASSERT_TRUE(deflate->DecodePrefix(ZlibCompress(raw, 4), 0, 400, raw.size(), out).ok());
  EXPECT_TRUE(std::equal(out.begin(), out.end(), raw.begin()));
}

TEST(Lzf, RoundTripsLiblzf) {
  auto raw = Counts(20000, 5);
  std::vector<uint8_t> z(raw.size() + 64);
  unsigned n = lzf_compress(raw.data(), raw.size(), z.data(), z.size());
  ASSERT_GT(n, 0u);
  z.resize(n);
  std::vector<uint8_t> out;
  ASSERT_TRUE(DecodeLzf(z, raw.size(), out).ok());
  EXPECT_EQ(out, raw);
  z[n / 2] ^= 0xff;
  z.resize(n / 2 + 1);
  EXPECT_FALSE(DecodeLzf(z, raw.size(), out).ok() && out == raw);
}

TEST(Shuffle, InvertsTheShuffleLayout) {
  for (size_t es : {1, 2, 4, 8}) {
    auto raw = Counts(1001, 6);
    raw.resize(raw.size() - 3);  // a tail that is not a whole element stays in place
    std::vector<uint8_t> shuffled = Shuffle(raw, es);
    for (size_t i = (raw.size() / es) * es; i < raw.size(); ++i) shuffled[i] = raw[i];
    std::vector<uint8_t> out;
    Unshuffle(shuffled, es, out);
    EXPECT_EQ(out, raw) << "element size " << es;
  }
}

TEST(Fletcher32, DetectsCorruption) {
  // A checksum computed as HDF5 stores it (little-endian after the data).
  std::vector<uint8_t> data = Counts(999, 7);
  data.push_back(42);  // odd length exercises the trailing byte
  uint32_t sum = Fletcher32(data.data(), data.size());
  std::vector<uint8_t> stored = data;
  for (int i = 0; i < 4; ++i) stored.push_back(static_cast<uint8_t>(sum >> (8 * i)));
  std::vector<uint8_t> out;
  ASSERT_TRUE(VerifyFletcher32(stored, out).ok());
  EXPECT_EQ(out, data);
  stored[17] ^= 1;
  EXPECT_EQ(VerifyFletcher32(stored, out).code(), StatusCode::kInvalid);
}

TEST(FilterPipeline, RejectsUnsupportedFiltersByName) {
  auto szip = FilterPipeline::Make({{4, "szip", {}}}, 4);
  EXPECT_EQ(szip.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(szip.status().message().find("szip"), std::string::npos);
  auto blosc = FilterPipeline::Make({{32001, "blosc", {}}}, 4);
  EXPECT_NE(blosc.status().message().find("32001"), std::string::npos);
}

TEST(FilterPipeline, ShuffleThenDeflateDecodes) {
  auto raw = Counts(4096, 8);
  auto stored = ZlibCompress(Shuffle(raw, 4), 4);
  auto p = FilterPipeline::Make({{2, "shuffle", {4}}, {1, "deflate", {4}}}, 4);
  ASSERT_TRUE(p.ok());
  std::vector<uint8_t> scratch, out;
  ASSERT_TRUE(p->Decode(stored, 0, raw.size(), scratch, out).ok());
  EXPECT_EQ(out, raw);
  // filter_mask bit 1 set: deflate skipped for this chunk (stored shuffled but raw).
  auto shuffled = Shuffle(raw, 4);
  ASSERT_TRUE(p->Decode(shuffled, 0b10, raw.size(), scratch, out).ok());
  EXPECT_EQ(out, raw);
}
