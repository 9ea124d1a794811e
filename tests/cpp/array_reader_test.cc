// ArrayReader (pread + own decoders) against libhdf5's own H5Dread on files written by
// libhdf5 with every storage layout and filter combination it offers.
#include "io/array_reader.h"

#include <gtest/gtest.h>
#include <hdf5.h>

#include <filesystem>
#include <random>

#include "io/hdf5/h5_file.h"

using namespace cellfeed;

namespace {

struct Storage {
  std::string name;
  hsize_t chunk0;  // 0 = contiguous
  bool shuffle, deflate, fletcher;
  hsize_t userblock;
};

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("cellfeed_ar_" + name + ".h5")).string();
}

// Writes a 1-D float32 dataset "v" (n values) and a 2-D int32 dataset "m" (rows x 7).
void WriteFile(const std::string& path, const Storage& s, const std::vector<float>& v,
               const std::vector<int32_t>& m, hsize_t rows) {
  hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
  if (s.userblock) H5Pset_userblock(fcpl, s.userblock);
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
  auto make = [&](const char* name, hid_t type, int rank, const hsize_t* dims,
                  const hsize_t* chunk, const void* data) {
    hid_t space = H5Screate_simple(rank, dims, nullptr);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (s.chunk0) {
      H5Pset_chunk(dcpl, rank, chunk);
      if (s.shuffle) H5Pset_shuffle(dcpl);
      if (s.deflate) H5Pset_deflate(dcpl, 4);
      if (s.fletcher) H5Pset_fletcher32(dcpl);
    }
    hid_t d = H5Dcreate2(f, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(space);
  };
  hsize_t n = v.size();
  hsize_t c1[1] = {s.chunk0};
  make("v", H5T_NATIVE_FLOAT, 1, &n, c1, v.data());
  hsize_t dims[2] = {rows, 7};
  hsize_t c2[2] = {std::max<hsize_t>(1, s.chunk0 / 50), 3};
  make("m", H5T_NATIVE_INT32, 2, dims, c2, m.data());
  H5Fclose(f);
  H5Pclose(fcpl);
}

class ArrayReaderTest : public ::testing::TestWithParam<Storage> {};

TEST_P(ArrayReaderTest, MatchesHdf5ForRandomPieces) {
  const Storage s = GetParam();
  const hsize_t n = 5003, rows = 301;
  std::mt19937 rng(1);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng() % 100) * 0.5f;
  std::vector<int32_t> m(rows * 7);
  for (auto& x : m) x = static_cast<int32_t>(rng() % 1000) - 500;
  const std::string path = TempPath(s.name);
  WriteFile(path, s, v, m, rows);

  auto h5 = io::H5File::Open(path);
  ASSERT_TRUE(h5.ok()) << h5.status().message();
  auto file = io::RandomAccessFile::Open(path);
  ASSERT_TRUE(file.ok());
  auto lv = h5.value()->Describe("v");
  auto lm = h5.value()->Describe("m");
  ASSERT_TRUE(lv.ok()) << lv.status().message();
  ASSERT_TRUE(lm.ok()) << lm.status().message();
  EXPECT_EQ(lv->chunked, s.chunk0 != 0);

  for (int threads : {1, 3}) {
    util::ThreadPool pool(threads);
    // Random pieces in random order, some overlapping, converted to float64.
    std::vector<io::Piece> pieces;
    int64_t dst = 0;
    for (int k = 0; k < 200; ++k) {
      int64_t len = rng() % 40;
      int64_t src = rng() % (n - len);
      pieces.push_back({src, len, dst});
      dst += len;
    }
    std::vector<double> out(static_cast<size_t>(dst));
    io::ArrayRead r{&lv.value(), file.value().get(), pieces, DType::kFloat64, out.data()};
    Status st = io::ReadArrays(std::span<io::ArrayRead>(&r, 1), pool);
    ASSERT_TRUE(st.ok()) << st.message();
    for (const auto& p : pieces)
      for (int64_t i = 0; i < p.count; ++i)
        ASSERT_EQ(out[p.dst + i], static_cast<double>(v[p.src + i])) << s.name;

    // The same pieces through a cache (whole decoded chunks, or pages of unfiltered ones),
    // twice: the first pass fills it, the second reads from it; the small budget evicts.
    for (size_t budget : {size_t{64} << 20, size_t{8192}}) {
      io::ChunkCache cache(budget);
      for (int pass = 0; pass < 2; ++pass) {
        std::vector<double> cached(out.size(), -1);
        io::ArrayRead rc{&lv.value(), file.value().get(), pieces, DType::kFloat64,
                         cached.data(), -1, false, &cache};
        st = io::ReadArrays(std::span<io::ArrayRead>(&rc, 1), pool);
        ASSERT_TRUE(st.ok()) << st.message();
        for (const auto& p : pieces)
          for (int64_t i = 0; i < p.count; ++i)
            ASSERT_EQ(cached[p.dst + i], static_cast<double>(v[p.src + i]))
                << s.name << " budget " << budget << " pass " << pass;
      }
    }

    // Rows of the 2-D array, reversed order with a repeat.
    std::vector<io::Piece> row_pieces = {{300, 1, 0}, {120, 5, 1}, {0, 3, 6}, {120, 1, 9}};
    std::vector<int64_t> got(10 * 7);
    io::ArrayRead rm{&lm.value(), file.value().get(), row_pieces, DType::kInt64, got.data()};
    st = io::ReadArrays(std::span<io::ArrayRead>(&rm, 1), pool);
    ASSERT_TRUE(st.ok()) << st.message();
    for (const auto& p : row_pieces)
      for (int64_t i = 0; i < p.count; ++i)
        for (int c = 0; c < 7; ++c)
          ASSERT_EQ(got[(p.dst + i) * 7 + c], m[(p.src + i) * 7 + c]) << s.name;
  }
  std::filesystem::remove(path);
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, ArrayReaderTest,
    ::testing::Values(Storage{"contiguous", 0, false, false, false, 0},
                      Storage{"contiguous_userblock", 0, false, false, false, 512},
                      Storage{"chunked", 1000, false, false, false, 0},
                      Storage{"tiny_chunks", 3, false, false, false, 0},
                      Storage{"deflate", 1000, false, true, false, 0},
                      Storage{"shuffle_deflate", 777, true, true, false, 0},
                      Storage{"fletcher", 1000, false, false, true, 0},
                      Storage{"shuffle_deflate_fletcher", 500, true, true, true, 0},
                      Storage{"deflate_userblock", 1000, false, true, false, 1024}),
    [](const auto& info) { return info.param.name; });

TEST(ArrayReader, CorruptChunkNamesFileElementAndChunk) {
  const Storage s{"corrupt", 1000, false, true, false, 0};
  std::vector<float> v(5000, 1.0f);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % 13);
  std::vector<int32_t> m(10 * 7, 1);
  const std::string path = TempPath(s.name);
  WriteFile(path, s, v, m, 10);
  auto h5 = io::H5File::Open(path);
  ASSERT_TRUE(h5.ok());
  auto lv = h5.value()->Describe("v");
  ASSERT_TRUE(lv.ok());
  const io::ChunkLocation c = lv->chunks[2];
  h5.value().reset();
  {  // flip bytes in the middle of chunk 2
    FILE* f = fopen(path.c_str(), "r+b");
    fseek(f, static_cast<long>(c.address + c.stored_size / 2), SEEK_SET);
    for (int i = 0; i < 8; ++i) fputc(0xA5 ^ i, f);
    fclose(f);
  }
  auto file = io::RandomAccessFile::Open(path);
  util::ThreadPool pool(2);
  auto got = io::ReadRange<float>(lv.value(), *file.value(), 0, 5000, pool);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kInvalid);
  EXPECT_NE(got.status().message().find(path), std::string::npos) << got.status().message();
  EXPECT_NE(got.status().message().find("v: chunk 2"), std::string::npos) << got.status().message();
  std::filesystem::remove(path);
}

}  // namespace

namespace {

TEST(ArrayReader, RangeCheckSeesWideIndicesBeforeNarrowing) {
  // int64 values that would wrap into [0, 100) if narrowed to int32 first.
  const std::string path = TempPath("wide_indices");
  std::vector<int64_t> v = {1, 2, 3, (int64_t{1} << 32) + 5, 7};
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  hsize_t n = v.size();
  hid_t space = H5Screate_simple(1, &n, nullptr);
  hid_t d = H5Dcreate2(f, "idx", H5T_NATIVE_INT64, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
  H5Dclose(d);
  H5Sclose(space);
  H5Fclose(f);
  auto h5 = io::H5File::Open(path);
  auto layout = h5.value()->Describe("idx");
  auto file = io::RandomAccessFile::Open(path);
  util::ThreadPool pool(1);
  std::vector<int32_t> out(5);
  io::ArrayRead r{&layout.value(), file.value().get(), {{0, 5, 0}}, DType::kInt32, out.data(), 100};
  Status st = io::ReadArrays(std::span<io::ArrayRead>(&r, 1), pool);
  EXPECT_EQ(st.code(), StatusCode::kInvalid);
  EXPECT_NE(st.message().find("value 4294967301 at element 3"), std::string::npos) << st.message();
  r.valid_below = -1;
  r.pieces = {{0, 3, 0}};
  EXPECT_TRUE(io::ReadArrays(std::span<io::ArrayRead>(&r, 1), pool).ok());
  EXPECT_EQ(out[2], 3);
  std::filesystem::remove(path);
}

}  // namespace
