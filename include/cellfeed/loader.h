// The Loader: streams the batches of an EpochPlan out of a Collection.
//
// Producer threads (up to two) claim the plan's fetches in order; each fetch is read
// with a single Collection::ReadInto (rows in batch order, so each chunk is decoded once
// and every batch is a contiguous slice of the result) into recycled buffers: on the
// collection's worker pool, or, when the producers alone occupy every thread, by its
// producer alone. Two producers let one fetch's serial work overlap another's decoding. An ordered window hands fetches to the consumer in plan order and lets
// producers run at most `prefetch` fetches ahead, so memory is bounded by the prefetch
// depth, not by the dataset. Batches come out in plan order whatever the thread count;
// the first error of any stage is returned by the consumer's next call to Next().
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cellfeed/collection.h"
#include "cellfeed/corpus.h"
#include "cellfeed/plan.h"
#include "cellfeed/status.h"
#include "cellfeed/transform.h"

namespace cellfeed {

struct LoaderOptions {
  SamplingConfig sampling;
  int rank = 0;
  int world_size = 1;
  // Fetches decoded ahead of the consumer (>= 1).
  int prefetch = 2;
  // obs columns delivered with every batch (categorical columns as int32 codes).
  std::vector<std::string> obs_columns;
  // Split of a rank's fetches among DataLoader worker processes: this loader yields the
  // fetches k with k % num_workers == worker_id.
  int worker_id = 0;
  int num_workers = 1;
  // A declared corpus over this collection (include/cellfeed/corpus.h), and the split to
  // stream: the epoch's cells are then the corpus's lanes for (split, epoch).
  std::shared_ptr<const Corpus> corpus;
  std::string split = "train";
  // Model inputs (null = none), computed batch by batch a few batches ahead of the
  // consumer on every collection thread; each cell's randomness is keyed by
  // (sampling.seed, epoch, cell key, purpose).
  std::shared_ptr<const transform::Pipeline> transform;
};

// Rows [row_begin, row_end) of a decoded fetch: batches share their fetch's buffers.
struct Batch {
  int64_t index = 0;  // batch number in this rank's epoch
  std::shared_ptr<const CsrMatrix> fetch;
  int64_t row_begin = 0, row_end = 0;
  std::shared_ptr<const std::vector<int64_t>> fetch_rows;  // global row ids, fetch order
  std::shared_ptr<const std::vector<Column>> fetch_obs;    // one per obs column
  // With a corpus: the declared source of each fetch row (same order as fetch_rows).
  std::shared_ptr<const std::vector<int32_t>> fetch_sources;
  // LoaderOptions::transform's outputs for this batch's rows (row 0 = row_begin), or null.
  std::shared_ptr<const transform::Outputs> inputs;
  int64_t size() const { return row_end - row_begin; }
};

class Loader {
 public:
  static Result<std::unique_ptr<Loader>> Make(std::shared_ptr<const Collection> collection,
                                              const LoaderOptions& options);
  ~Loader();  // stops and joins the producer
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Batches per epoch for this rank (equal on every rank).
  int64_t num_batches() const;
  // Starts producing epoch `epoch` at batch `start_batch` (resume). Stops a running epoch.
  // `earlier`: interrupted passes over this epoch (elastic resume, EpochPlan::Make); the
  // pass then yields the cells they left, in PassBatches(epoch, earlier) batches.
  Status Start(int64_t epoch, int64_t start_batch = 0,
               const std::vector<InterruptedPass>& earlier = {});
  Result<int64_t> PassBatches(int64_t epoch, const std::vector<InterruptedPass>& earlier) const;
  // The next batch; nullopt at the end of the epoch. `timeout`: give up waiting after it
  // and return Status::Cancelled("timeout") so callers can poll for interrupts.
  Result<std::optional<Batch>> Next(std::chrono::milliseconds timeout = std::chrono::hours(24));
  // Stops producing; Next() then ends. Safe to call at any time, repeatedly.
  void Stop();

  const LoaderOptions& options() const;
  // With a corpus: cells of each declared source this rank yields per epoch.
  std::vector<int64_t> SourceCellsOfRank(int64_t epoch) const;
  // With a corpus: cells of each source in each of this rank's first `max_batches`
  // batches of an epoch, row-major [batch][source], from the plan alone (nothing is read).
  std::vector<int64_t> BatchSourceCounts(int64_t epoch, int64_t max_batches) const;

  struct Impl;

 private:
  explicit Loader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cellfeed
