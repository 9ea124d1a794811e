// `cellfeed check FILE... [--layer NAME] [--values finite|counts|any] [--rows N]`
//
// Validates whole files, which reading never does (reads check only what they touch):
// every row of the matrix (every chunk inflated whole so its checksum is verified,
// indptr, column indices, and values under --values), the obs names and every obs and
// var column (categorical codes). Each file is opened on its own so one bad file does
// not hide the others. Prints one line per file; exits 1 if any file failed.
#include <algorithm>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "cellfeed/collection.h"
#include "commands.h"

namespace cellfeed::tools {

namespace {

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
    } else if (a == "--rows" && i + 1 < args.size()) {
      rows_per_read = std::max<int64_t>(1, std::atoll(args[++i].c_str()));
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "cellfeed check: unknown option '%s'\n", a.c_str());
      return 2;
    } else {
      files.push_back(a);
    }
  }
  if (files.empty()) {
    std::fprintf(stderr, "usage: cellfeed check FILE... [--layer NAME] [--values finite|counts|any] "
                         "[--threads N] [--rows N]\n");
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
  return failed ? 1 : 0;
}

}  // namespace cellfeed::tools
