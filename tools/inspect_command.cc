// `cellfeed inspect FILE... [--json] [--layer NAME]`: what a file holds, from its metadata.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cellfeed/collection.h"
#include "commands.h"
#include "json_writer.h"

namespace cellfeed::tools {

namespace {

std::string Shape(const std::vector<int64_t>& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

std::string ColumnType(const ColumnInfo& c) {
  std::string t = ColumnKindName(c.kind);
  if (c.kind == ColumnKind::kNumeric || c.kind == ColumnKind::kNullableInt) {
    t += " " + DTypeName(c.dtype);
  }
  return t;
}

void PrintText(const FileSummary& s) {
  std::printf("%s\n", s.path.c_str());
  std::printf("  shape: %lld cells x %lld genes\n", (long long)s.n_obs, (long long)s.n_vars);
  std::printf("  %s: %s", s.matrix_element.c_str(), s.encoding.c_str());
  if (s.nnz >= 0) std::printf(", nnz %lld", (long long)s.nnz);
  std::printf("\n");
  for (const ArraySummary& a : s.arrays) {
    std::printf("    %-14s %-8s shape %-14s %s", a.name.c_str(), a.dtype.c_str(),
                Shape(a.shape).c_str(), a.storage.c_str());
    if (!a.chunk_shape.empty()) {
      std::printf(", %lld chunks of %s (~%.4g cells each)", (long long)a.num_chunks,
                  Shape(a.chunk_shape).c_str(), a.rows_per_chunk);
    }
    std::printf(", filters: %s\n", a.filters.c_str());
  }
  std::printf("  obs columns (%zu):\n", s.obs_columns.size());
  for (const auto& c : s.obs_columns) std::printf("    %-24s %s\n", c.name.c_str(), ColumnType(c).c_str());
  std::printf("  var columns (%zu):\n", s.var_columns.size());
  for (const auto& c : s.var_columns) std::printf("    %-24s %s\n", c.name.c_str(), ColumnType(c).c_str());
}

void WriteColumns(JsonWriter& w, const std::vector<ColumnInfo>& cols) {
  w.BeginArray();
  for (const auto& c : cols) {
    w.BeginObject();
    w.Key("name");
    w.String(c.name);
    w.Key("kind");
    w.String(ColumnKindName(c.kind));
    w.Key("dtype");
    w.String(DTypeName(c.dtype));
    w.EndObject();
  }
  w.EndArray();
}

void WriteJson(JsonWriter& w, const FileSummary& s) {
  w.BeginObject();
  w.Key("path"); w.String(s.path);
  w.Key("n_obs"); w.Int(s.n_obs);
  w.Key("n_vars"); w.Int(s.n_vars);
  w.Key("element"); w.String(s.matrix_element);
  w.Key("encoding"); w.String(s.encoding);
  if (s.nnz >= 0) { w.Key("nnz"); w.Int(s.nnz); }
  w.Key("arrays");
  w.BeginArray();
  for (const ArraySummary& a : s.arrays) {
    w.BeginObject();
    w.Key("name"); w.String(a.name);
    w.Key("dtype"); w.String(a.dtype);
    w.Key("shape"); w.IntArray({a.shape.begin(), a.shape.end()});
    w.Key("storage"); w.String(a.storage);
    w.Key("chunk_shape"); w.IntArray({a.chunk_shape.begin(), a.chunk_shape.end()});
    w.Key("num_chunks"); w.Int(a.num_chunks);
    w.Key("rows_per_chunk"); w.Double(a.rows_per_chunk);
    w.Key("filters"); w.String(a.filters);
    w.EndObject();
  }
  w.EndArray();
  w.Key("obs_columns"); WriteColumns(w, s.obs_columns);
  w.Key("var_columns"); WriteColumns(w, s.var_columns);
  w.EndObject();
}

int RunInspect(const std::vector<std::string>& files, bool json, const OpenOptions& options) {
  JsonWriter w;
  w.BeginArray();
  int rc = 0;
  for (const std::string& f : files) {
    // Each file on its own: one bad file does not hide the report on the others.
    auto col = Collection::Open({f}, options);
    if (!col.ok()) {
      std::fprintf(stderr, "cellfeed inspect: error: %s\n", col.status().message().c_str());
      rc = 1;
      continue;
    }
    const FileSummary& s = col.value()->summaries()[0];
    if (json) {
      WriteJson(w, s);
    } else {
      PrintText(s);
    }
  }
  w.EndArray();
  if (json) std::printf("%s\n", w.str().c_str());
  return rc;
}

}  // namespace

Command AddInspectCommand(CLI::App& root) {
  struct Args {
    std::vector<std::string> files;
    bool json = false;
    OpenOptions options;
  };
  auto a = std::make_shared<Args>();
  a->options.threads = 1;
  CLI::App* app = root.add_subcommand(
      "inspect", "shape, encoding, dtypes, filters, chunking and columns of files (metadata only)");
  app->add_option("FILE", a->files, "h5ad files, .h5 (10x) files or zarr stores")
      ->required()
      ->type_name("PATH");
  app->add_flag("--json", a->json, "print a JSON array, one object per file");
  app->add_option("--layer", a->options.layer,
                  "the matrix to describe: 'raw' (raw/X), a layers/ name; default X")
      ->type_name("NAME");
  return {app, [a] { return RunInspect(a->files, a->json, a->options); }};
}

}  // namespace cellfeed::tools
