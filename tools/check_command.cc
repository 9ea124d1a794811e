// `cellfeed check FILE... [--layer NAME] [--values finite|counts|any] [--rows N]`
//
// Validates whole files, which reading never does (reads check only what they touch):
// every row of the matrix (every chunk inflated whole so its checksum is verified,
// indptr, column indices, and values under --values), the obs names and every obs and
// var column (categorical codes). Each file is opened on its own so one bad file does
// not hide the others, and in isolation (OpenOptions::isolate): a file that crashes or
// hangs libhdf5 is reported like any other bad file, and the check goes on. A directory
// stands for the .h5ad / .h5 files below it (a zarr store inside is checked as one).
// Prints one line per file; exits 1 if any file failed.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include "cellfeed/collection.h"
#include "commands.h"

namespace cellfeed::tools {

namespace {

bool IsZarrStore(const std::filesystem::path& d) {
  return std::filesystem::exists(d / ".zgroup") || std::filesystem::exists(d / "zarr.json");
}

// The files a command-line argument stands for, in a stable order.
std::vector<std::string> Expand(const std::string& arg) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(arg, ec) || IsZarrStore(arg)) return {arg};
  std::vector<std::string> out;
  for (auto it = fs::recursive_directory_iterator(arg, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    const fs::path& p = it->path();
    if (it->is_directory(ec) && IsZarrStore(p)) {
      out.push_back(p.string());
      it.disable_recursion_pending();
    } else if (it->is_regular_file(ec) &&
               (p.extension() == ".h5ad" || p.extension() == ".h5" || p.extension() == ".hdf5")) {
      out.push_back(p.string());
    }
  }
  std::sort(out.begin(), out.end());
  if (out.empty()) out.push_back(arg);  // reported as what it is: not a readable file
  return out;
}

struct Checked {
  int64_t cells = 0, values = 0;
};

Result<Checked> CheckFile(const std::string& path, const OpenOptions& options, int64_t rows_per_read) {
  CF_ASSIGN_OR_RETURN(auto col, Collection::Open({path}, options));
  Checked c;
  std::vector<int64_t> rows;
  for (int64_t begin = 0; begin < col->n_obs(); begin += rows_per_read) {
    const int64_t end = std::min(col->n_obs(), begin + rows_per_read);
    rows.resize(static_cast<size_t>(end - begin));
    std::iota(rows.begin(), rows.end(), begin);
    CF_ASSIGN_OR_RETURN(CsrMatrix m, col->Read(rows));
    c.cells += m.n_rows;
    c.values += m.indptr.back();
  }
  CF_RETURN_IF_ERROR(col->ObsNames().status());
  for (const ColumnInfo& info : col->obs_columns()) CF_RETURN_IF_ERROR(col->Obs(info.name).status());
  for (const ColumnInfo& info : col->var_columns()) CF_RETURN_IF_ERROR(col->Var(info.name).status());
  return c;
}

}  // namespace

int CheckCommand(const std::vector<std::string>& args) {
  OpenOptions options;
  options.verify_whole_chunks = true;
  int64_t rows_per_read = 4096;
  std::vector<std::string> files;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--layer" && i + 1 < args.size()) {
      options.layer = args[++i];
    } else if (a == "--values" && i + 1 < args.size()) {
      options.values = args[++i];
    } else if (a == "--threads" && i + 1 < args.size()) {
      options.threads = std::atoi(args[++i].c_str());
    } else if (a == "--timeout" && i + 1 < args.size()) {
      options.open_timeout_s = std::atof(args[++i].c_str());
    } else if (a == "--rows" && i + 1 < args.size()) {
      rows_per_read = std::max<int64_t>(1, std::atoll(args[++i].c_str()));
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "cellfeed check: unknown option '%s'\n", a.c_str());
      return 2;
    } else {
      for (auto& f : Expand(a)) files.push_back(std::move(f));
    }
  }
  if (files.empty()) {
    std::fprintf(stderr, "usage: cellfeed check FILE... [--layer NAME] [--values finite|counts|any] "
                         "[--threads N] [--rows N] [--timeout SECONDS]\n"
                         "  (a directory stands for the .h5ad/.h5 files below it)\n");
    return 2;
  }
  int failed = 0;
  for (const std::string& path : files) {
    auto r = CheckFile(path, options, rows_per_read);
    if (r.ok()) {
      std::printf("ok     %s: %lld cells, %lld stored values (values='%s')\n", path.c_str(),
                  (long long)r->cells, (long long)r->values, options.values.c_str());
    } else {
      ++failed;
      std::printf("error  %s\n", path.c_str());
      std::fprintf(stderr, "cellfeed check: error: %s\n", r.status().message().c_str());
    }
    std::fflush(stdout);
  }
  if (files.size() > 1) {
    std::fprintf(stderr, "cellfeed check: %zu files: %zu ok, %d failed\n", files.size(),
                 files.size() - static_cast<size_t>(failed), failed);
  }
  return failed ? 1 : 0;
}

}  // namespace cellfeed::tools
