// Shared by the h5ad fuzz targets: opening an input, and what every successful read
// must be whatever the input (a valid CSR matrix of the requested rows in the
// collection's gene space). The targets abort otherwise.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "cellfeed/collection.h"
#include "cellfeed/csr.h"

namespace cellfeed::fuzz {

inline bool Verbose() {
  static const bool verbose = std::getenv("CELLFEED_FUZZ_VERBOSE") != nullptr;
  return verbose;
}

// The collection, or null when opening failed as it should: with a message.
inline std::shared_ptr<const Collection> OpenOrNull(const std::string& path,
                                                    const std::string& layer, int threads) {
  OpenOptions options;
  options.threads = threads;
  options.layer = layer;
  // In-process, so that libFuzzer sees libhdf5's crashes (scripts/fuzz.sh files them);
  // CELLFEED_FUZZ_ISOLATE=1 fuzzes the isolated open instead.
  options.isolate = std::getenv("CELLFEED_FUZZ_ISOLATE") != nullptr;
  auto opened = Collection::Open({path}, options);
  if (opened.ok()) return opened.value();
  if (opened.status().message().empty()) std::abort();  // an error must say what is wrong
  if (Verbose()) {
    std::fprintf(stderr, "open(%s): %s\n", layer.c_str(), opened.status().message().c_str());
  }
  return nullptr;
}

inline void AbortUnlessValidCsr(const CsrMatrix& x, size_t rows, int64_t n_vars) {
  if (x.n_rows != static_cast<int64_t>(rows) || x.n_cols != n_vars) std::abort();
  if (x.indptr.size() != rows + 1 || x.indptr[0] != 0) std::abort();
  for (size_t i = 0; i + 1 < x.indptr.size(); ++i) {
    if (x.indptr[i] > x.indptr[i + 1]) std::abort();
  }
  if (static_cast<int64_t>(x.indices.size()) != x.indptr.back()) std::abort();
  if (x.data.size() != x.indices.size()) std::abort();
  for (int32_t j : x.indices) {
    if (j < 0 || j >= n_vars) std::abort();
  }
}

}  // namespace cellfeed::fuzz
