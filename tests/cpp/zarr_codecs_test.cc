// The zarr codec decoders against independent encoders: the libraries' own compressors
// (c-blosc, zstd, lz4, libdeflate) and the CRC-32C check value of the standard.
#include <blosc.h>
#include <gtest/gtest.h>
#include <libdeflate.h>
#include <lz4.h>
#include <zstd.h>

#include <cstring>
#include <numeric>

#include "io/codec/filter_pipeline.h"
#include "io/codec/zarr_codecs.h"

namespace cellfeed::io::codec {
namespace {

std::vector<uint8_t> Floats(size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i % 17) * 0.5f;
  std::vector<uint8_t> b(n * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

TEST(ZarrCodecs, Crc32cCheckValue) {
  const char* s = "123456789";  // RFC 3720 / iSCSI check value
  EXPECT_EQ(Crc32c(reinterpret_cast<const uint8_t*>(s), 9), 0xE3069283u);
  EXPECT_EQ(Crc32c(nullptr, 0), 0u);
}

TEST(ZarrCodecs, VerifyCrc32cStripsAndRejects) {
  std::vector<uint8_t> b = Floats(100);
  const uint32_t c = Crc32c(b.data(), b.size());
  std::vector<uint8_t> in = b;
  for (int i = 0; i < 4; ++i) in.push_back(static_cast<uint8_t>(c >> (8 * i)));
  std::vector<uint8_t> out;
  ASSERT_TRUE(VerifyCrc32c(in, out).ok());
  EXPECT_EQ(out, b);
  in[7] ^= 1;
  Status st = VerifyCrc32c(in, out);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("crc32c mismatch"), std::string::npos);
}

class BloscTest : public ::testing::TestWithParam<std::tuple<const char*, int>> {};

TEST_P(BloscTest, DecodesWhatCBloscEncodes) {
  const auto [cname, shuffle] = GetParam();
  std::vector<uint8_t> raw = Floats(10000);
  std::vector<uint8_t> enc(raw.size() + BLOSC_MAX_OVERHEAD);
  const int n = blosc_compress_ctx(5, shuffle, 4, raw.size(), raw.data(), enc.data(), enc.size(),
                                   cname, 0, 1);
  ASSERT_GT(n, 0);
  enc.resize(static_cast<size_t>(n));
  std::vector<uint8_t> out;
  ASSERT_TRUE(DecodeBlosc(enc, raw.size(), out).ok());
  EXPECT_EQ(out, raw);
  enc[enc.size() / 2] ^= 0xFF;
  enc.resize(enc.size() - 3);  // truncated: the header's size no longer matches
  EXPECT_FALSE(DecodeBlosc(enc, raw.size(), out).ok());
}

TEST_P(BloscTest, PrefixDecodesOnlyTheFirstBlocks) {
  const auto [cname, shuffle] = GetParam();
  std::vector<uint8_t> raw = Floats(30000);
  std::vector<uint8_t> enc(raw.size() + BLOSC_MAX_OVERHEAD);
  // Blocks of 4 KiB: a prefix spans some blocks, not all.
  const int n = blosc_compress_ctx(5, shuffle, 4, raw.size(), raw.data(), enc.data(), enc.size(),
                                   cname, 4096, 1);
  ASSERT_GT(n, 0);
  enc.resize(static_cast<size_t>(n));
  for (size_t prefix : {size_t{0}, size_t{1}, size_t{4}, size_t{4095}, size_t{4097},
                        size_t{50001}, raw.size()}) {
    std::vector<uint8_t> out;
    ASSERT_TRUE(DecodeBloscPrefix(enc, prefix, raw.size(), out).ok()) << prefix;
    ASSERT_GE(out.size(), prefix);
    ASSERT_LT(out.size(), prefix + 4);  // whole float32 items
    EXPECT_TRUE(std::equal(out.begin(), out.end(), raw.begin())) << prefix;
  }
  std::vector<uint8_t> out;
  EXPECT_FALSE(DecodeBloscPrefix(enc, raw.size() + 1, raw.size() + 8, out).ok());  // past the end
  EXPECT_FALSE(DecodeBloscPrefix(enc, 100, raw.size() - 1, out).ok());  // more than the chunk
  std::vector<uint8_t> cut(enc.begin(), enc.end() - 3);
  EXPECT_FALSE(DecodeBloscPrefix(cut, 100, raw.size(), out).ok());
  std::vector<uint8_t> junk(enc.size(), 0xff);
  EXPECT_FALSE(DecodeBloscPrefix(junk, 100, raw.size(), out).ok());
}

INSTANTIATE_TEST_SUITE_P(All, BloscTest,
                         ::testing::Combine(::testing::Values("lz4", "zstd", "zlib", "blosclz"),
                                            ::testing::Values(BLOSC_NOSHUFFLE, BLOSC_SHUFFLE,
                                                              BLOSC_BITSHUFFLE)));

TEST(ZarrCodecs, ZstdAndLz4AndGzip) {
  std::vector<uint8_t> raw = Floats(5000), out;
  std::vector<uint8_t> z(ZSTD_compressBound(raw.size()));
  z.resize(ZSTD_compress(z.data(), z.size(), raw.data(), raw.size(), 3));
  ASSERT_TRUE(DecodeZstd(z, raw.size(), out).ok());
  EXPECT_EQ(out, raw);
  EXPECT_FALSE(DecodeZstd(z, raw.size() - 1, out).ok());  // declares more than allowed

  std::vector<uint8_t> l(4 + LZ4_compressBound(static_cast<int>(raw.size())));
  const uint32_t size = static_cast<uint32_t>(raw.size());
  std::memcpy(l.data(), &size, 4);
  l.resize(4 + LZ4_compress_default(reinterpret_cast<const char*>(raw.data()),
                                    reinterpret_cast<char*>(l.data() + 4),
                                    static_cast<int>(raw.size()), static_cast<int>(l.size() - 4)));
  ASSERT_TRUE(DecodeLz4Numcodecs(l, raw.size(), out).ok());
  EXPECT_EQ(out, raw);
  l[4 + (l.size() - 4) / 2] ^= 0xFF;
  l.resize(l.size() - 5);
  EXPECT_FALSE(DecodeLz4Numcodecs(l, raw.size(), out).ok());

  libdeflate_compressor* c = libdeflate_alloc_compressor(6);
  for (int gzip = 0; gzip < 2; ++gzip) {
    std::vector<uint8_t> g(libdeflate_gzip_compress_bound(c, raw.size()));
    g.resize(gzip ? libdeflate_gzip_compress(c, raw.data(), raw.size(), g.data(), g.size())
                  : libdeflate_deflate_compress(c, raw.data(), raw.size(), g.data(), g.size()));
    Status st = gzip ? InflateGzip(g, raw.size(), out) : InflateRaw(g, raw.size(), out);
    ASSERT_TRUE(st.ok()) << st.message();
    EXPECT_EQ(out, raw);
  }
  libdeflate_free_compressor(c);
}

TEST(ZarrCodecs, SwapUntransposeVlen) {
  std::vector<uint8_t> be = {0, 0, 0x80, 0x3f, 1, 2, 3, 4}, out;
  SwapBytes(be, 4, out);
  EXPECT_EQ(out, (std::vector<uint8_t>{0x3f, 0x80, 0, 0, 4, 3, 2, 1}));
  // A 2 x 3 chunk stored transposed (3 x 2): column-major of [[0,1,2],[3,4,5]].
  std::vector<uint8_t> t = {0, 3, 1, 4, 2, 5};
  ASSERT_TRUE(Untranspose(t, 1, 2, 3, out).ok());
  EXPECT_EQ(out, (std::vector<uint8_t>{0, 1, 2, 3, 4, 5}));
  std::vector<uint8_t> v = {2, 0, 0, 0, 1, 0, 0, 0, 'a', 0, 0, 0, 0};
  std::vector<std::string> items;
  ASSERT_TRUE(DecodeVlenUtf8(v, 2, items).ok());
  EXPECT_EQ(items, (std::vector<std::string>{"a", ""}));
  v.pop_back();
  EXPECT_FALSE(DecodeVlenUtf8(v, 2, items).ok());
}

TEST(ZarrCodecs, PipelineDecodesABloscPrefix) {
  auto blosc = FilterPipeline::Make({{kCodecBlosc, "blosc", {}}}, 4);
  auto checked = FilterPipeline::Make({{kCodecBlosc, "blosc", {}}, {kCodecCrc32c, "crc32c", {}}}, 4);
  ASSERT_TRUE(blosc.ok() && checked.ok());
  EXPECT_TRUE(blosc->CanDecodePrefix(0));
  EXPECT_FALSE(checked->CanDecodePrefix(0));
  std::vector<uint8_t> raw = Floats(8000);
  std::vector<uint8_t> enc(raw.size() + BLOSC_MAX_OVERHEAD);
  const int n = blosc_compress_ctx(5, BLOSC_SHUFFLE, 4, raw.size(), raw.data(), enc.data(),
                                   enc.size(), "lz4", 2048, 1);
  ASSERT_GT(n, 0);
  enc.resize(static_cast<size_t>(n));
  std::vector<uint8_t> out;
  ASSERT_TRUE(blosc->DecodePrefix(enc, 0, 400, raw.size(), out).ok());
  ASSERT_EQ(out.size(), 400u);
  EXPECT_TRUE(std::equal(out.begin(), out.end(), raw.begin()));
}

TEST(ZarrCodecs, PipelineRunsTheChainBackwards) {
  // Encoding order: big-endian bytes, then zstd, then crc32c.
  std::vector<uint8_t> raw = Floats(64), be;
  SwapBytes(raw, 4, be);
  std::vector<uint8_t> z(ZSTD_compressBound(be.size()));
  z.resize(ZSTD_compress(z.data(), z.size(), be.data(), be.size(), 1));
  const uint32_t c = Crc32c(z.data(), z.size());
  for (int i = 0; i < 4; ++i) z.push_back(static_cast<uint8_t>(c >> (8 * i)));
  auto p = FilterPipeline::Make({{kCodecByteSwap, "big-endian", {}},
                                 {kCodecZstd, "zstd", {}},
                                 {kCodecCrc32c, "crc32c", {}}},
                                4);
  ASSERT_TRUE(p.ok());
  std::vector<uint8_t> scratch, out;
  ASSERT_TRUE(p.value().Decode(z, 0, raw.size(), scratch, out).ok());
  EXPECT_EQ(out, raw);
  EXPECT_EQ(p.value().Describe(), "big-endian+zstd+crc32c");
}

}  // namespace
}  // namespace cellfeed::io::codec
