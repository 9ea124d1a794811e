// libFuzzer target: an arbitrary byte string opened as an .h5ad file, then read.
//
// The bytes are written to a fresh temporary file (libhdf5 opens paths), opened with
// cellfeed::Collection::Open (H5File::Open + AnnDataFile::Open + the open-time checks),
// and, when that succeeds, a few rows of X, every obs column, the obs names and every var
// column are read through the Collection, and the same for raw/X when present. Errors are
// expected; crashes, sanitizer reports, hangs and leaked HDF5 identifiers are bugs.
// Seeds: fuzz/corpus/h5ad (small valid files, fuzz/make_seeds.py).
#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cellfeed/collection.h"
#include "fuzz_common.h"

namespace {

std::string TempPath() {
  const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  return std::string(dir) + "/cellfeed_fuzz_" + std::to_string(getpid()) + ".h5ad";
}

bool WriteFresh(const std::string& path, const uint8_t* data, size_t size) {
  // A new inode every time: libhdf5 recognizes an open file by device and inode.
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
  const bool verbose = cellfeed::fuzz::Verbose();
  const cellfeed::Collection& c = *opened;
  (void)c.summaries();
  const int64_t n = c.n_obs();
  std::vector<int64_t> rows;
  if (n > 0) rows = {0, n - 1, n / 2, n - 1};
  auto m = c.Read(rows);
  if (verbose) {
    std::fprintf(stderr, "read(%s) %lld rows: %s\n", layer.c_str(), static_cast<long long>(rows.size()),
                 m.ok() ? "ok" : m.status().message().c_str());
  }
  if (m.ok()) {
    cellfeed::fuzz::AbortUnlessValidCsr(m.value(), rows.size(), c.n_vars());
  }
  std::vector<int64_t> some(rows.begin(), rows.begin() + std::min<size_t>(rows.size(), 3));
  for (const auto& col : c.obs_columns()) (void)c.Obs(col.name, some);
  (void)c.ObsNames(some);
  for (const auto& col : c.var_columns()) (void)c.Var(col.name);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = TempPath();
  if (!WriteFresh(path, data, size)) return 0;
  Exercise(path, "");
  Exercise(path, "raw");
  unlink(path.c_str());
  // Every HDF5 identifier cellfeed opened is closed again.
  if (H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) != 0) {
    std::fprintf(stderr, "fuzz_h5ad: %lld HDF5 identifiers left open\n",
                 static_cast<long long>(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL)));
    std::abort();
  }
  return 0;
}
