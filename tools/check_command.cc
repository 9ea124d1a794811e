// `cellfeed check FILE|DIR... [--layer NAME] [--values finite|counts|any] [--rows N]
//  [--threads N] [--timeout SECONDS] [--json]`
//
// Validates whole files, which reading never does (reads check only what they touch):
// every row of the matrix (every chunk inflated whole so its checksum is verified,
// indptr, column indices, and values under --values), the obs names and every obs and
// var column (categorical codes). Each file is opened on its own so one bad file does
// not hide the others, and in isolation (OpenOptions::isolate): a file that crashes or
// hangs libhdf5 is reported like any other bad file, and the check goes on. A directory
// stands for the .h5ad / .h5 files below it (a zarr store inside is checked as one).
// Prints one line per file (or, with --json, one report of every file and the totals);
// exits 1 if any file failed. On a terminal, a progress line on stderr says where it is.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "cellfeed/collection.h"
#include "commands.h"
#include "json_writer.h"
#include "option_checks.h"
#include "progress.h"

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

// `where` ("3/10 file.h5ad") heads the progress line.
Result<Checked> CheckFile(const std::string& path, const OpenOptions& options, int64_t rows_per_read,
                          ProgressLine& progress, const std::string& where) {
  if (progress.Due()) progress.Draw("check " + where + ": opening");
  CF_ASSIGN_OR_RETURN(auto col, Collection::Open({path}, options));
  Checked c;
  std::vector<int64_t> rows;
  for (int64_t begin = 0; begin < col->n_obs(); begin += rows_per_read) {
    if (progress.Due()) {
      progress.Draw("check " + where + ": " + std::to_string(begin) + " / " +
                    std::to_string(col->n_obs()) + " cells (" +
                    std::to_string(100 * begin / col->n_obs()) + "%)");
    }
    const int64_t end = std::min(col->n_obs(), begin + rows_per_read);
    rows.resize(static_cast<size_t>(end - begin));
    std::iota(rows.begin(), rows.end(), begin);
    CF_ASSIGN_OR_RETURN(CsrMatrix m, col->Read(rows));
    c.cells += m.n_rows;
    c.values += m.indptr.back();
  }
  if (progress.Due()) progress.Draw("check " + where + ": obs and var columns");
  CF_RETURN_IF_ERROR(col->ObsNames().status());
  for (const ColumnInfo& info : col->obs_columns()) CF_RETURN_IF_ERROR(col->Obs(info.name).status());
  for (const ColumnInfo& info : col->var_columns()) CF_RETURN_IF_ERROR(col->Var(info.name).status());
  return c;
}

struct CheckArgs {
  std::vector<std::string> inputs;
  OpenOptions options;
  int64_t rows_per_read = 4096;
  bool json = false;
};

int RunCheck(CheckArgs& a) {
  std::vector<std::string> files;
  for (const std::string& in : a.inputs) {
    for (auto& f : Expand(in)) files.push_back(std::move(f));
  }
  ProgressLine progress;
  JsonWriter w;
  w.BeginObject();
  w.Key("values"); w.String(a.options.values);
  w.Key("files");
  w.BeginArray();
  int failed = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string& path = files[i];
    const std::string where = std::to_string(i + 1) + "/" + std::to_string(files.size()) + " " + path;
    auto r = CheckFile(path, a.options, a.rows_per_read, progress, where);
    progress.Clear();
    w.BeginObject();
    w.Key("path"); w.String(path);
    w.Key("ok"); w.Bool(r.ok());
    if (r.ok()) {
      w.Key("cells"); w.Int(r->cells);
      w.Key("stored_values"); w.Int(r->values);
      if (!a.json) {
        std::printf("ok     %s: %lld cells, %lld stored values (values='%s')\n", path.c_str(),
                    (long long)r->cells, (long long)r->values, a.options.values.c_str());
      }
    } else {
      ++failed;
      w.Key("error"); w.String(r.status().message());
      if (!a.json) std::printf("error  %s\n", path.c_str());
      std::fprintf(stderr, "cellfeed check: error: %s\n", r.status().message().c_str());
    }
    w.EndObject();
    std::fflush(stdout);
  }
  w.EndArray();
  const size_t ok = files.size() - static_cast<size_t>(failed);
  w.Key("summary");
  w.BeginObject();
  w.Key("files"); w.Int(static_cast<long long>(files.size()));
  w.Key("ok"); w.Int(static_cast<long long>(ok));
  w.Key("failed"); w.Int(failed);
  w.EndObject();
  w.EndObject();
  if (a.json) std::printf("%s\n", w.str().c_str());
  if (files.size() > 1) {
    std::fprintf(stderr, "cellfeed check: %zu files: %zu ok, %d failed\n", files.size(), ok, failed);
  }
  return failed ? 1 : 0;
}

}  // namespace

Command AddCheckCommand(CLI::App& root) {
  auto a = std::make_shared<CheckArgs>();
  a->options.verify_whole_chunks = true;
  CLI::App* app = root.add_subcommand(
      "check", "validate whole files: every chunk, checksum, index, value and column");
  app->footer("Each file is opened on its own, in isolation: one bad file (even one that crashes\n"
              "or hangs libhdf5) is reported and the check goes on. Exit status 1 if any failed.\n"
              "On a terminal, a progress line on stderr shows the file and cells done.");
  app->add_option("FILE", a->inputs,
                  "h5ad / .h5 files or zarr stores; a directory stands for the .h5ad/.h5 "
                  "files (and zarr stores) below it")
      ->required()
      ->type_name("PATH");
  app->add_flag("--json", a->json,
                "print one JSON object: every file's result and the totals (errors still go "
                "to stderr too)");
  AddOpenOptions(app, a->options, "check");
  app->add_option("--rows", a->rows_per_read, "cells read at a time")
      ->type_name("N")
      ->check(Integer(1))
      ->capture_default_str();
  app->add_option_function<double>(
         "--timeout", [a](const double& s) { a->options.open_timeout_s = s; },
         "seconds one file's isolated open may take before it counts as hung "
                  "(default 60, or CELLFEED_OPEN_TIMEOUT)")
      ->type_name("SECONDS")
      ->check(Number(0));
  return {app, [a] { return RunCheck(*a); }};
}

}  // namespace cellfeed::tools
