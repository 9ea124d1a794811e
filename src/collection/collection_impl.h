// Collection internals shared by its source files.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "cellfeed/collection.h"
#include "source/anndata_source.h"
#include "io/array_reader.h"
#include "util/thread_pool.h"

namespace cellfeed {

// A categorical obs column across files, merged once at open.
struct MergedCategories {
  std::shared_ptr<const Column> categories;
  std::vector<std::vector<int32_t>> remap;  // per file: file code -> merged code; empty = same
};

struct Collection::Impl {
  std::vector<std::unique_ptr<AnnDataSource>> files;  // h5ad, Cell Ranger, zarr: one interface
  std::vector<std::string> paths;
  std::vector<int64_t> offsets;  // first global row per file, then n_obs
  std::vector<std::string> var_names;
  // Per file: file gene index -> collection column, -1 = dropped; empty = identity.
  std::vector<std::vector<int32_t>> gene_maps;
  std::vector<bool> gene_order_preserving;
  std::vector<FileSummary> summaries;
  std::vector<ColumnInfo> obs_columns;  // present, with one kind, in every file
  std::map<std::string, MergedCategories> merged_categories;  // by column name
  std::unique_ptr<util::ThreadPool> pool;
  // A pool with no workers: its jobs run on the calling thread (ReadInto, parallel=false).
  std::unique_ptr<util::ThreadPool> caller_only = std::make_unique<util::ThreadPool>(1);
  bool decode_prefix = true;  // !OpenOptions::verify_whole_chunks
  io::ValueCheck value_check = io::ValueCheck::kFinite;  // OpenOptions::values
  // ChunkBlockStarts, computed once (it reads every file's whole indptr) and shared by
  // every loader of this collection.
  mutable std::mutex chunk_block_mu;
  mutable std::optional<std::vector<int64_t>> chunk_block_starts;
  // Decoded indptr chunks: every read needs a few entries from all over each file.
  std::unique_ptr<io::ChunkCache> indptr_cache = std::make_unique<io::ChunkCache>(64 << 20);

  int64_t n_obs() const { return offsets.back(); }
  int64_t n_vars() const { return static_cast<int64_t>(var_names.size()); }
  // Index of the file holding global row `row` (which must be in range).
  size_t FileOf(int64_t row) const;
  Status CheckRows(std::span<const int64_t> rows) const;
};

// Rows of a request grouped by file: local rows and the output positions they fill.
struct RowsByFile {
  std::vector<std::vector<int64_t>> local;
  std::vector<std::vector<int64_t>> positions;
};
RowsByFile GroupRowsByFile(const Collection::Impl& impl, std::span<const int64_t> rows);

// The distinct rows a request needs of one file, and for CSR their value ranges.
struct FileRows {
  std::vector<int64_t> unique;      // sorted distinct local rows
  std::vector<int64_t> start, end;  // their [indptr[r], indptr[r+1])
};
// Reads indptr[r] and indptr[r+1] for each distinct row of each CSR matrix (one per file:
// X, or an obsm entry), checking them against nnz.
Status ReadRowExtents(const Collection::Impl& impl,
                      std::span<const anndata::MatrixLayout* const> matrices, const RowsByFile& g,
                      std::vector<FileRows>& out, io::ReadStats* stats, util::ThreadPool& pool);
// Index of local row `row` among fr.unique.
size_t UniqueIndex(const FileRows& fr, int64_t row);

// Reads `rows` into `out` (its buffers reused), with `pool`'s threads.
Status ReadCsrRows(const Collection::Impl& impl, std::span<const int64_t> rows, CsrMatrix& out,
                   util::ThreadPool& pool);
// Appends decode-only reads of every data/indices chunk `rows` touch (indptr is read now).
Status PlanDecodeOnly(const Collection::Impl& impl, std::span<const int64_t> rows,
                      std::vector<io::ArrayRead>& reads);

}  // namespace cellfeed
