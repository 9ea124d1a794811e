// Model-ready inputs, computed on the loader's producer threads (docs/MODEL_INPUTS.md).
//
// A Pipeline turns the rows of a decoded fetch (CSR, in the collection's gene space) into
// the tensors a foundation model consumes. Each cell is first mapped onto a gene
// vocabulary (GeneMap: several file genes that map to one vocabulary gene are summed;
// genes a file lacks are zero and flagged per file), then the steps run in order on its
// values (binomial thinning, read-depth-aware downsampling, normalize_total, log1p,
// clipping), then one output stage writes its tensors: a dense panel with depth tokens
// (scFoundation, AIDO.Cell), rank-value tokens (Geneformer) or value bins (scGPT).
//
// Randomness comes only from counter-based generators keyed by (seed, epoch, cell key,
// purpose): a cell's inputs do not depend on the thread, worker, fetch or resume point.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "cellfeed/buffer.h"
#include "cellfeed/csr.h"
#include "cellfeed/status.h"

namespace cellfeed {
class Collection;
}

namespace cellfeed::transform {

// ---------------------------------------------------------------------------------------
// Gene vocabularies.

enum class GeneKey { kSymbol, kEnsembl };

struct VocabSpec {
  // The vocabulary in model order: position = vocabulary id. Empty entries (special
  // tokens) never match a gene.
  std::vector<std::string> genes;
  GeneKey key = GeneKey::kSymbol;  // what `genes` holds
  // Where a file's gene identifiers come from: "" = var names, else a var column.
  std::string var_column;
  // Ensembl ID -> symbol pairs (GENCODE): used for the genes of a file that hold the
  // other kind of identifier than the vocabulary.
  std::vector<std::pair<std::string, std::string>> id_symbol;
};

struct FileGeneReport {
  std::string file;
  int64_t file_genes = 0;     // genes of the file (in the collection's gene space)
  int64_t mapped = 0;         // of those, mapped onto a vocabulary gene
  int64_t translated = 0;     // mapped through the Ensembl ID <-> symbol table
  int64_t summed = 0;         // mapped genes sharing their vocabulary gene with another
  int64_t vocab_missing = 0;  // vocabulary genes that no gene of the file maps to
  std::vector<std::string> unmapped_examples;  // up to 5 identifiers that map to nothing
};

// A collection's columns mapped onto a vocabulary, per file.
struct GeneMap {
  int64_t vocab_size = 0;
  int64_t n_cols = 0;                  // collection columns
  std::vector<std::string> files;      // paths, for messages
  std::vector<std::string> col_names;  // collection var names, for messages
  std::vector<int64_t> file_offsets;   // first global row of each file, then n_obs
  // The distinct maps: collection column -> vocabulary id (-1 = not in the vocabulary),
  // and vocabulary id -> 1 when the file has that gene. Files whose genes map alike (a
  // collection's plates share their var) share one, so a fetch that mixes files looks its
  // values up in one table that stays in cache (Tahoe: one of 250 KB, not 14).
  std::vector<std::vector<int32_t>> column_to_vocab;
  std::vector<std::vector<uint8_t>> present;
  std::vector<uint32_t> map_of_file;  // file f's maps are [map_of_file[f]]
  std::vector<FileGeneReport> reports;  // per file

  size_t FileOf(int64_t row) const;
  const std::vector<int32_t>& ColumnToVocab(size_t file) const { return column_to_vocab[map_of_file[file]]; }
  const std::vector<uint8_t>& Present(size_t file) const { return present[map_of_file[file]]; }
};

// "ENSG00000141510.17" -> "ENSG00000141510" (also drops "_PAR_Y"-style tails after it).
std::string StripEnsemblVersion(const std::string& id);
bool LooksLikeEnsemblId(const std::string& id);

// The mapping from per-file gene identifiers. ids[f][i] is file f's identifier of its
// gene i, cols[f][i] the collection column holding that gene (-1 = not in the
// collection's gene space). A file with no gene in the vocabulary is an error naming it.
Result<GeneMap> MapGeneIds(const std::vector<std::string>& files,
                           const std::vector<std::vector<std::string>>& ids,
                           const std::vector<std::vector<int32_t>>& cols,
                           const std::vector<std::string>& col_names,
                           const std::vector<int64_t>& file_offsets, const VocabSpec& spec);
// The same for an open collection (identifiers from each file's var names or column).
Result<GeneMap> MapGenes(const Collection& collection, const VocabSpec& spec);

// ---------------------------------------------------------------------------------------
// Steps, applied in order to each cell's values on the vocabulary.

// Binomial thinning: every count x becomes Binomial(x, p), with p = fraction, or
// p = min(1, target_total / total) when target_total > 0. Needs integer counts.
struct Thin {
  double fraction = 1.0;
  double target_total = 0;
};
// Read-depth-aware downsampling (AIDO.Cell / scFoundation pretraining): with probability
// `probability` a cell is thinned with p ~ Beta(beta_a, beta_b); the raw counts stay as
// the target. Needs integer counts. At most one per pipeline.
struct RdaDownsample {
  double probability = 0.5;
  int beta_a = 2, beta_b = 2;  // integers: Beta(a, b) as the a-th of a+b-1 uniforms
};
// x / total * target (totals in float64 over the cell's vocabulary genes); an empty cell
// stays all zero.
struct NormalizeTotal {
  double target = 1e4;
};
struct Log1p {};
struct Clip {
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
};
using Step = std::variant<Thin, RdaDownsample, NormalizeTotal, Log1p, Clip>;

// ---------------------------------------------------------------------------------------
// Output stages.

// Value masking: each nonzero position independently with probability `nonzero`, each
// zero position of a gene the file has with probability `zero`; masked input values are
// replaced by `value`. Depth tokens are never masked.
struct ValueMask {
  double nonzero = 0.30;
  double zero = 0.03;
  float value = -1.0f;
};

enum class DepthTokens {
  kNone,
  // T then S after the panel. S = log10(counts total) (0 for an empty cell); T by t_mode.
  kScFoundation,
  // T = max(log10(raw total), 5), S = max(log10(counts total), 5), both clamped at 20.
  kAidoCell,
};
enum class TMode {
  kConstant,  // T = t_value (scFoundation's default 4 = log10(1e4))
  kRawTotal,  // T = log10(raw total), before any thinning (RDA pretraining)
  kSPlus,     // T = S + t_value (log10(total * 10^t_value))
};

enum class ValueType { kFloat32, kBFloat16 };

struct DenseOutput {
  DepthTokens depth = DepthTokens::kNone;
  TMode t_mode = TMode::kConstant;
  double t_value = 4.0;
  ValueType dtype = ValueType::kFloat32;
  bool mask = false;
  ValueMask value_mask;
};

// Geneformer rank-value encoding (token ids = vocabulary positions).
struct RankOutput {
  int version = 2;                  // 1: 2,048 tokens; 2: <cls> + 4,094 + <eos>
  int64_t max_tokens = 0;           // 0 = the version's default (2,048 / 4,096 in all)
  std::vector<double> medians;      // per vocabulary id; > 0 for genes
  bool n_counts_all_genes = true;   // n_counts over all genes of the row (else mapped only)
  int32_t pad_id = 0, mask_id = 1, cls_id = 2, eos_id = 3;
  int32_t first_gene_id = 4;        // random replacement tokens are drawn from here on
  bool mlm = true;
  double mlm_probability = 0.15;
  double mask_fraction = 0.8, random_fraction = 0.1;  // of the selected tokens
  bool pad_to_batch = false;        // rows as long as the batch's longest (else max length)
};

// scGPT value binning and collation (gene ids = vocabulary positions).
struct BinnedOutput {
  int n_bins = 51;
  int64_t max_length = 1200;        // including <cls>
  bool sample = true;               // over-long cells: sample genes at random (else truncate)
  bool include_zeros = false;       // nonzero genes only (scGPT's pretraining default)
  int32_t cls_id = -1, pad_id = -1; // -1: vocab_size, vocab_size + 1
  float pad_value = -2.0f, mask_value = -1.0f, cls_value = 0.0f;
  double mask_ratio = 0.4;
  bool pad_to_batch = false;        // rows as long as the batch's longest (else max_length)
};

using Output = std::variant<DenseOutput, RankOutput, BinnedOutput>;

struct PipelineSpec {
  std::vector<Step> steps;
  Output output;
};

// ---------------------------------------------------------------------------------------
// Results: named tensors whose first dimension is the fetch's rows, so a batch (a
// contiguous row range) is a zero-copy slice.

enum class TensorType { kFloat32, kBFloat16, kInt64, kBool };
size_t TensorTypeSize(TensorType t);
std::string TensorTypeName(TensorType t);  // "float32", "bfloat16", "int64", "bool"

struct Tensor {
  std::string name;
  TensorType type = TensorType::kFloat32;
  std::vector<int64_t> shape;  // shape[0] = rows of the fetch
  Buffer<uint8_t> data;        // row-major
  int64_t row_bytes() const;
};

struct Outputs {
  std::vector<Tensor> tensors;
  const Tensor* Find(const std::string& name) const;
};

// Per cell of a fetch: global row id and the 64-bit key its randomness derives from.
struct FetchCells {
  std::span<const int64_t> rows;
  std::span<const uint64_t> keys;
  uint64_t seed = 0;
  int64_t epoch = 0;
};

class Pipeline {
 public:
  static Result<std::shared_ptr<const Pipeline>> Make(GeneMap map, PipelineSpec spec);
  ~Pipeline();

  // Writes the outputs of every row of `X` (rows = cells.rows, in that order) into `out`,
  // reusing its buffers (no allocation once they have the size).
  Status Run(const CsrMatrix& X, const FetchCells& cells, Outputs& out) const;
  // The same for X's rows row_begin .. row_end - 1 only (cells describe those rows;
  // output row 0 is X's row row_begin): one batch of a fetch.
  Status Run(const CsrMatrix& X, int64_t row_begin, int64_t row_end, const FetchCells& cells,
             Outputs& out) const;

  const GeneMap& gene_map() const;
  const PipelineSpec& spec() const;

  struct Impl;

 private:
  explicit Pipeline(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cellfeed::transform
