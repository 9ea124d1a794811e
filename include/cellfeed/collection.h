// A Collection: one or many .h5ad files read as one row-concatenated AnnData.
//
// Opening reads metadata only (with libhdf5); reading rows uses pread and cellfeed's own
// decoders on a pool of worker threads, so reads scale with cores.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "cellfeed/csr.h"
#include "cellfeed/dataframe.h"
#include "cellfeed/status.h"

namespace cellfeed {

struct OpenOptions {
  // "" reads X; "raw" reads raw/X with raw/var; any other name reads layers/<name>.
  std::string layer;
  // Per path, the same choice for each file (a corpus whose sources keep counts in
  // different places); empty = `layer` for every file.
  std::vector<std::string> file_layers;
  int threads = 0;  // worker threads for reads; 0 = one per hardware thread
  // Gene space when files differ: "inner", "outer", or "genes" (exactly `genes`).
  std::string join = "inner";
  std::vector<std::string> genes;
  // Inflate every chunk of X whole, so that its Adler-32 checksum is always verified.
  // Off by default: a deflate chunk whose needed rows all lie in its first third is
  // inflated only that far (2-3x less work for the chunk), checked for a well-formed
  // stream but not against the checksum, which covers the whole chunk.
  bool verify_whole_chunks = false;
  // Checks of X's values as they are read: "finite" (default: NaN or infinity is an
  // error naming the file, element and row), "counts" (also negative or fractional
  // values), "any" (delivered as stored).
  std::string values = "finite";
  // Isolation from libhdf5's failures on corrupt files (docs/RELIABILITY.md): libhdf5's
  // part of opening each HDF5 file, and the first read of each string dataset after, are
  // first done in a short-lived probe process under a time and memory limit, so that a
  // file that crashes or hangs libhdf5 is an error naming it, not a dead process. Unset:
  // CELLFEED_ISOLATE (default on), CELLFEED_OPEN_TIMEOUT (default 60 s per probe),
  // CELLFEED_PROBE_MEMORY_MB (default 8192; 0 = no limit).
  std::optional<bool> isolate;
  std::optional<double> open_timeout_s;
  std::optional<int64_t> probe_memory_mb;
};

// A check polled about 5 times a second while open probes run (process-wide; the Python
// module installs one that runs Python's signal handlers): true kills the probes and the
// open fails Cancelled, so Ctrl-C does not wait out a hanging file's probe timeout.
void SetOpenInterruptCheck(bool (*check)());

// A probe that succeeded is not run again on the same file bytes (device, inode, size,
// mtime, ctime) with the same probe program and limits, in this process or in processes
// forked from it (DataLoader workers). This forgets those verdicts, so that the next open
// probes every file again (benchmarks of a first open; tests).
void ForgetOpenProbes();

// What `cellfeed inspect` reports about one array.
struct ArraySummary {
  std::string name;        // e.g. "X/data"
  std::string dtype;
  std::vector<int64_t> shape;
  std::string storage;     // "chunked" / "contiguous" / "compact"
  std::vector<int64_t> chunk_shape;
  std::string filters;     // "gzip(4)+shuffle", "none"
  int64_t num_chunks = 0;
  double rows_per_chunk = 0;  // cells per chunk (CSR: from the mean values per cell)
};

struct FileSummary {
  std::string path;
  int64_t n_obs = 0, n_vars = 0, nnz = -1;
  std::string matrix_element;  // "X", "raw/X", "layers/counts"
  std::string encoding;        // "csr_matrix" / "array"
  std::vector<ArraySummary> arrays;
  std::vector<ColumnInfo> obs_columns, var_columns;
};

// Where Collection::MeasureReadCost puts the bytes of uncompressed arrays: into
// fetch-sized output buffers, as a loader must, or into a small scratch buffer that
// stays in the CPU cache (a copy no loader that delivers the bytes can match).
enum class ReplayDestination { kFetchBuffers, kScratch };

// The I/O and decoding a set of reads needs (see Collection::MeasureReadCost).
struct ReadCost {
  int64_t cells = 0;
  int64_t chunks = 0;         // chunks fetched, counted once per row set that touches them
  int64_t bytes_read = 0;     // from the files
  int64_t bytes_decoded = 0;  // produced by the decoders (whole chunks when compressed)
  int64_t bytes_delivered = 0;  // uncompressed bytes copied into fetch buffers
  double seconds = 0;         // wall time of doing only that, on all threads
};

// One obsm entry as every file of a collection holds it (Collection::ObsmKeys).
struct ObsmInfo {
  std::string key;
  int64_t n_cols = 0;
  std::string dtype;     // the stored dtype of the values (the first file's)
  std::string encoding;  // "array" (dense), "csr_matrix", or "mixed" (both: read as dense)
};

// Row-major float32 values, n_rows x n_cols.
struct DenseMatrix {
  int64_t n_rows = 0;
  int64_t n_cols = 0;
  Buffer<float> values;
};

// Rows of an obsm entry: CSR when every file stores it as csr_matrix, else dense.
using ObsmMatrix = std::variant<DenseMatrix, CsrMatrix>;

class Collection {
 public:
  static Result<std::shared_ptr<Collection>> Open(const std::vector<std::string>& paths,
                                                  const OpenOptions& options = {});
  ~Collection();

  int64_t n_obs() const;
  int64_t n_vars() const;
  const std::vector<std::string>& files() const;
  const std::vector<int64_t>& file_offsets() const;  // first global row of each file, + n_obs
  const std::vector<std::string>& var_names() const;
  std::vector<ColumnInfo> obs_columns() const;
  std::vector<ColumnInfo> var_columns() const;
  const std::vector<FileSummary>& summaries() const;
  int threads() const;

  // The given rows (any order, duplicates allowed) as float32 CSR, in that order.
  Result<CsrMatrix> Read(std::span<const int64_t> rows) const;
  // The same into `out`, reusing its buffers' capacity (no allocation when they fit).
  // With parallel=false the calling thread does all the work, for callers that already
  // run one read per thread (the loader's producers, on few cores).
  Status ReadInto(std::span<const int64_t> rows, CsrMatrix& out, bool parallel = true) const;
  // One obs column for the given rows (all rows when empty optional).
  Result<Column> Obs(const std::string& column,
                     std::optional<std::span<const int64_t>> rows = std::nullopt) const;
  // File `file`'s own obs column `column` at its local `rows`, as that file stores it
  // (categorical codes index the file's own categories): for a column that not every file
  // of the collection has, where each file must be judged on its own (corpus filters).
  Result<Column> FileObs(size_t file, const std::string& column,
                         std::span<const int64_t> rows) const;
  Result<std::vector<std::string>> ObsNames(
      std::optional<std::span<const int64_t>> rows = std::nullopt) const;
  Result<Column> Var(const std::string& column) const;
  // The obsm entries every file holds, readable (dense 2-D array or csr_matrix) and with
  // one width, sorted by key.
  std::vector<ObsmInfo> ObsmKeys() const;
  // Rows of obsm[key] (any order, duplicates allowed) as float32, in that order, read
  // and decoded like X (chunks on the worker threads; NaN or infinity is an error unless
  // OpenOptions::values is "any"). A key that a file lacks or cannot read, or whose width
  // differs between files, is an error naming the file and element.
  Result<ObsmMatrix> ReadObsm(const std::string& key, std::span<const int64_t> rows) const;
  // File `file`'s own genes, in its order: identifiers (its var names when `column` is
  // "", else that string or categorical var column) and the collection column holding
  // each gene (-1 = dropped by the join). For mapping files onto a vocabulary.
  Result<std::vector<std::string>> FileGeneIds(size_t file, const std::string& column) const;
  std::vector<int32_t> FileGeneColumns(size_t file) const;

  // The first global row of every run of rows whose values start in the same storage
  // chunk of X (one block per chunk, for SamplingConfig::chunk_blocks). Reads each
  // file's whole indptr on the first call; later calls return the same list. Chunk = the larger of data's and indices' chunks; unchunked
  // arrays count 65,536 values (dense: rows) as one chunk.
  Result<std::vector<int64_t>> ChunkBlockStarts() const;

  // The hardware floor of reading `row_sets` (e.g. the fetches of a plan): every chunk
  // of data/indices each set touches (once per set) is read and decoded in parallel
  // passes on all threads (as many sets per pass as 256 MiB of outputs hold), and
  // nothing else is timed: no planning, indptr lookups, assembly, conversion, checks, or
  // copies beyond the one that delivers uncompressed bytes to `destination`.
  Result<ReadCost> MeasureReadCost(
      std::span<const std::vector<int64_t>> row_sets,
      ReplayDestination destination = ReplayDestination::kFetchBuffers) const;

  struct Impl;

 private:
  explicit Collection(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cellfeed
