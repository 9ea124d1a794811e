// libFuzzer target: an arbitrary byte string opened as a zipped zarr store, then read;
// and the zarr chunk decoders on the same bytes.
//
// The bytes are written to a temporary .zip (told apart by content: a zip that is not a
// zarr store is refused with a message) and opened with cellfeed::Collection::Open (zip
// central directory, local headers, JSON metadata of v2 or v3, shard indexes, strings
// and categories decoded at open); when that succeeds a few rows of X, every obs column,
// the obs names and every var column are read, and the same for raw/X. Then the bytes go
// through each zarr codec (blosc, zstd, lz4, gzip, raw deflate, crc32c, vlen-utf8) on
// its own. Errors are expected; crashes, sanitizer reports and hangs are bugs.
// Seeds: fuzz/corpus/zarr (small zipped stores from anndata, v2 and sharded v3).
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cellfeed/collection.h"
#include "fuzz_common.h"
#include "io/codec/zarr_codecs.h"

namespace {

std::string TempPath() {
  const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  return std::string(dir) + "/cellfeed_fuzz_" + std::to_string(getpid()) + ".zip";
}

bool WriteFresh(const std::string& path, const uint8_t* data, size_t size) {
  unlink(path.c_str());
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  size_t done = 0;
  while (done < size) {
    ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  close(fd);
  return done == size;
}

void Exercise(const std::string& path, const std::string& layer) {
  auto opened = cellfeed::fuzz::OpenOrNull(path, layer, 1);
  if (!opened) return;
  const cellfeed::Collection& c = *opened;
  (void)c.summaries();
  const int64_t n = c.n_obs();
  std::vector<int64_t> rows;
  if (n > 0) rows = {0, n - 1, n / 2, n - 1};
  auto m = c.Read(rows);
  if (m.ok()) cellfeed::fuzz::AbortUnlessValidCsr(m.value(), rows.size(), c.n_vars());
  std::vector<int64_t> some(rows.begin(), rows.begin() + std::min<size_t>(rows.size(), 3));
  for (const auto& col : c.obs_columns()) (void)c.Obs(col.name, some);
  (void)c.ObsNames(some);
  for (const auto& col : c.var_columns()) (void)c.Var(col.name);
}

void Codecs(std::span<const uint8_t> in) {
  using namespace cellfeed::io::codec;
  constexpr size_t kMax = 1 << 18;
  std::vector<uint8_t> out;
  if (DecodeBlosc(in, kMax, out).ok() && out.size() > kMax) std::abort();
  if (DecodeZstd(in, kMax, out).ok() && out.size() > kMax) std::abort();
  if (DecodeLz4Numcodecs(in, kMax, out).ok() && out.size() > kMax) std::abort();
  if (InflateGzip(in, kMax, out).ok() && out.size() > kMax) std::abort();
  if (InflateRaw(in, kMax, out).ok() && out.size() > kMax) std::abort();
  if (VerifyCrc32c(in, out).ok() && out.size() + 4 != in.size()) std::abort();
  std::vector<std::string> items;
  (void)DecodeVlenUtf8(in, 0, items);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = TempPath();
  if (!WriteFresh(path, data, size)) return 0;
  Exercise(path, "");
  Exercise(path, "raw");
  unlink(path.c_str());
  Codecs(std::span<const uint8_t>(data, size));
  return 0;
}
