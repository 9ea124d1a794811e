#include "cellfeed/loader.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "exec/inputs_ahead.h"
#include "exec/matrix_pool.h"
#include "exec/ordered_window.h"
#include "exec/recycle_pool.h"

namespace cellfeed {

namespace {

// What the producer hands the consumer: one decoded fetch cut into batches, or the
// error that ended the epoch.
struct DecodedFetch {
  Status status;
  std::vector<Batch> batches;
  std::shared_ptr<exec::FetchInputs> inputs;  // the batches' transform work, if any
};

// The 64-bit key each fetch row's transform randomness derives from: the global row id,
// with the copy number of an upsampled corpus cell in the top 16 bits (copy 0 = the row
// id itself), so that the copies of one cell get inputs of their own.
std::vector<uint64_t> CellKeys(const std::vector<int64_t>& rows, const std::vector<int32_t>& copies) {
  std::vector<uint64_t> keys(rows.begin(), rows.end());
  for (size_t i = 0; i < copies.size(); ++i) keys[i] |= static_cast<uint64_t>(copies[i]) << 48;
  return keys;
}

}  // namespace

struct Loader::Impl {
  std::shared_ptr<const Collection> collection;
  LoaderOptions options;
  std::vector<int64_t> file_sizes;
  std::vector<int64_t> block_starts;  // sampling.chunk_blocks: one block per storage chunk
  std::optional<EpochPlan> plan;
  std::shared_ptr<const EpochSelection> selection;  // the plan's lanes (corpus only)
  int64_t batches_per_epoch = 0;
  // The last resumed pass PassBatches planned, for Start to use (planning a resumed pass
  // recomputes what every old rank consumed: worth doing once).
  mutable std::mutex cache_mu;
  mutable std::optional<std::pair<int64_t, std::vector<InterruptedPass>>> cached_key;
  mutable std::optional<EpochPlan> cached_plan;
  mutable std::shared_ptr<const EpochSelection> cached_lanes;

  // Fetches of this epoch (and DataLoader worker), in plan order; the window hands them
  // out in that order however many producers decode them.
  std::vector<int64_t> fetch_ids;
  int64_t first_fetch = 0, skip_batches = 0;
  exec::OrderedWindow<DecodedFetch> window;
  std::shared_ptr<exec::MatrixPool> matrices;
  std::shared_ptr<exec::RecyclePool<transform::Outputs>> inputs;  // LoaderOptions::transform
  std::unique_ptr<exec::InputsAhead> inputs_ahead;                  // computes them
  int64_t epoch = 0;
  std::mutex lifecycle;  // Start/Stop may come from different threads
  std::vector<std::thread> producers;
  int num_producers = 1;

  // Consumer side.
  DecodedFetch current;
  int64_t current_seq = -1;  // its index in the window
  size_t next_in_current = 0;
  std::atomic<bool> finished{true};

  // Fetch buffers in use at once: `depth` claimed or waiting, one being consumed, one
  // whose last batch the consumer may still hold.
  explicit Impl(int depth) : window(depth), matrices(exec::MatrixPool::Make(depth + 2)) {}

  // Model inputs run `ahead` batches beyond the consumer on every collection thread; the
  // pool keeps those buffers, plus a few the consumer may still hold.
  void MakeInputsStage(int threads) {
    const int64_t ahead = std::max(4, 2 * threads);
    inputs = exec::RecyclePool<transform::Outputs>::Make(static_cast<size_t>(ahead + 4));
    inputs_ahead = std::make_unique<exec::InputsAhead>(threads, ahead);
  }

  void Produce();
  Result<EpochPlan> MakePlan(int64_t epoch, std::shared_ptr<const EpochSelection>* lanes,
                             const std::vector<InterruptedPass>& earlier = {}) const;
  bool ReadInParallel() const;
  Result<DecodedFetch> DecodeFetch(const Fetch& fetch, int64_t skip_batches) const;
  Result<std::shared_ptr<const transform::Outputs>> TransformBatch(const exec::FetchInputs& f,
                                                                   size_t batch) const;
  void StopProducers() {
    std::lock_guard<std::mutex> lock(lifecycle);
    window.Close();
    for (std::thread& t : producers) t.join();
    producers.clear();
    if (inputs_ahead) inputs_ahead->Stop();
  }
};

// When the producers alone can occupy every thread of the collection, each reads its
// fetch by itself: splitting a fetch across threads then only adds a wake-up and a
// barrier per read, and chunk tasks that balance badly on small fetches. Measured on 2
// cores (2 producers): uncompressed +8-17% from b=1 f=1 to b=16 f=64, gzip unchanged.
bool Loader::Impl::ReadInParallel() const {
  return num_producers < collection->threads();
}

Result<DecodedFetch> Loader::Impl::DecodeFetch(const Fetch& fetch, int64_t skip_batches) const {
  // Rows in batch order: the read decodes each chunk once, batches become slices.
  auto rows = std::make_shared<std::vector<int64_t>>();
  rows->reserve(fetch.rows.size());
  for (const auto& b : fetch.batches)
    for (int32_t p : b) rows->push_back(fetch.rows[static_cast<size_t>(p)]);
  std::unique_ptr<CsrMatrix> X = matrices->Take();
  CF_RETURN_IF_ERROR(collection->ReadInto(*rows, *X, ReadInParallel()));
  auto matrix = matrices->Share(std::move(X));
  DecodedFetch out;
  if (options.transform) {
    std::vector<int32_t> copies;  // corpus lanes: the copy of each row, batch order
    if (!fetch.lanes.empty()) {
      for (const auto& b : fetch.batches)
        for (int32_t p : b) copies.push_back(selection->lanes[static_cast<size_t>(fetch.lanes[static_cast<size_t>(p)])].copy);
    }
    out.inputs = std::make_shared<exec::FetchInputs>();
    out.inputs->matrix = matrix;
    out.inputs->rows = rows;
    out.inputs->keys = CellKeys(*rows, copies);  // per row: what its randomness derives from
  }
  auto obs = std::make_shared<std::vector<Column>>();
  for (const std::string& name : options.obs_columns) {
    CF_ASSIGN_OR_RETURN(Column c, collection->Obs(name, std::span<const int64_t>(*rows)));
    obs->push_back(std::move(c));
  }
  std::shared_ptr<const std::vector<int32_t>> sources;
  if (!fetch.lanes.empty()) {
    auto src = std::make_shared<std::vector<int32_t>>();
    src->reserve(rows->size());
    for (const auto& b : fetch.batches)
      for (int32_t p : b) src->push_back(selection->lanes[static_cast<size_t>(fetch.lanes[static_cast<size_t>(p)])].source);
    sources = std::move(src);
  }
  const int64_t per_fetch = options.sampling.fetch_factor;
  int64_t begin = 0;
  for (size_t j = 0; j < fetch.batches.size(); ++j) {
    const int64_t n = static_cast<int64_t>(fetch.batches[j].size());
    if (static_cast<int64_t>(j) >= skip_batches) {
      Batch b;
      b.index = fetch.index * per_fetch + static_cast<int64_t>(j);
      b.fetch = matrix;
      b.row_begin = begin;
      b.row_end = begin + n;
      b.fetch_rows = rows;
      b.fetch_obs = obs;
      b.fetch_sources = sources;
      if (out.inputs) out.inputs->ranges.emplace_back(begin, begin + n);  // inputs come later
      out.batches.push_back(std::move(b));
    }
    begin += n;
  }
  return out;
}

// One batch's model inputs, into recycled buffers (run by InputsAhead's threads). Batches
// skipped on resume are never transformed.
Result<std::shared_ptr<const transform::Outputs>> Loader::Impl::TransformBatch(const exec::FetchInputs& f,
                                                                               size_t batch) const {
  std::unique_ptr<transform::Outputs> out = inputs->Take();
  const auto [begin, end] = f.ranges[batch];
  const size_t b = static_cast<size_t>(begin), n = static_cast<size_t>(end - begin);
  transform::FetchCells cells{std::span<const int64_t>(*f.rows).subspan(b, n),
                              std::span<const uint64_t>(f.keys).subspan(b, n), options.sampling.seed, epoch};
  CF_RETURN_IF_ERROR(options.transform->Run(*f.matrix, begin, end, cells, *out));
  return inputs->Share(std::move(out));
}

// Each producer decodes whole fetches; with several, one fetch's serial work (planning,
// indptr, layout) overlaps another's parallel decoding.
void Loader::Impl::Produce() {
  for (;;) {
    const int64_t i = window.Claim();
    if (i < 0) return;
    const int64_t k = fetch_ids[static_cast<size_t>(i)];
    DecodedFetch item;
    try {
      auto decoded = DecodeFetch(plan->GetFetch(k), k == first_fetch ? skip_batches : 0);
      if (decoded.ok()) {
        item = std::move(decoded).value();
        if (item.inputs) inputs_ahead->Add(i, std::move(item.inputs));
      } else {
        item.status = decoded.status();
      }
    } catch (const std::exception& e) {  // allocation failure and the like
      item.status = Status::IOError(std::string("loader stopped: ") + e.what());
    }
    window.Put(i, std::move(item));
  }
}

Loader::Loader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Loader::~Loader() { Stop(); }

Result<std::unique_ptr<Loader>> Loader::Make(std::shared_ptr<const Collection> collection,
                                             const LoaderOptions& options) {
  if (!collection) return Status::Invalid("Loader needs a collection");
  if (options.prefetch < 1) return Status::Invalid("prefetch must be >= 1");
  if (options.num_workers < 1 || options.worker_id < 0 ||
      options.worker_id >= options.num_workers) {
    return Status::Invalid("worker_id must be in [0, num_workers)");
  }
  for (const std::string& name : options.obs_columns) {
    bool found = false;
    for (const auto& c : collection->obs_columns()) found = found || c.name == name;
    if (!found) {
      // Let Collection::Obs produce the message listing the columns.
      std::vector<int64_t> none;
      auto r = collection->Obs(name, std::span<const int64_t>(none));
      return r.ok() ? Status::Invalid("obs column '" + name + "' not found") : r.status();
    }
  }
  auto impl = std::make_unique<Impl>(options.prefetch);
  impl->collection = std::move(collection);
  if (options.transform) impl->MakeInputsStage(impl->collection->threads());
  impl->options = options;
  const auto& offsets = impl->collection->file_offsets();
  for (size_t f = 0; f + 1 < offsets.size(); ++f) {
    impl->file_sizes.push_back(offsets[f + 1] - offsets[f]);
  }
  if (options.sampling.chunk_blocks) {
    CF_ASSIGN_OR_RETURN(impl->block_starts, impl->collection->ChunkBlockStarts());
  }
  if (options.corpus != nullptr && options.corpus->collection() != impl->collection.get()) {
    return Status::Invalid("Loader: the corpus was declared over another collection");
  }
  // Validate the configuration once, and learn the epoch length (the same every epoch:
  // corpus targets do not change between epochs).
  std::shared_ptr<const EpochSelection> lanes;
  CF_ASSIGN_OR_RETURN(auto plan, impl->MakePlan(0, &lanes));
  impl->batches_per_epoch = plan.num_batches();
  return std::unique_ptr<Loader>(new Loader(std::move(impl)));
}

int64_t Loader::num_batches() const { return impl_->batches_per_epoch; }
const LoaderOptions& Loader::options() const { return impl_->options; }

Result<EpochPlan> Loader::Impl::MakePlan(int64_t epoch,
                                         std::shared_ptr<const EpochSelection>* lanes,
                                         const std::vector<InterruptedPass>& earlier) const {
  if (options.corpus != nullptr) {
    CF_ASSIGN_OR_RETURN(*lanes, options.corpus->ForEpoch(options.split, epoch));
  }
  return EpochPlan::Make(file_sizes, options.sampling, epoch, options.rank, options.world_size,
                         block_starts, *lanes, earlier);
}

Result<int64_t> Loader::PassBatches(int64_t epoch,
                                    const std::vector<InterruptedPass>& earlier) const {
  std::shared_ptr<const EpochSelection> lanes;
  CF_ASSIGN_OR_RETURN(auto plan, impl_->MakePlan(epoch, &lanes, earlier));
  const int64_t n = plan.num_batches();
  if (!earlier.empty()) {
    std::lock_guard<std::mutex> lock(impl_->cache_mu);
    impl_->cached_key.emplace(epoch, earlier);
    impl_->cached_plan.emplace(std::move(plan));
    impl_->cached_lanes = std::move(lanes);
  }
  return n;
}

std::vector<int64_t> Loader::SourceCellsOfRank(int64_t epoch) const {
  std::vector<int64_t> out;
  if (impl_->options.corpus == nullptr) return out;
  std::shared_ptr<const EpochSelection> lanes;
  auto plan = impl_->MakePlan(epoch, &lanes);
  if (!plan.ok()) return out;
  out.assign(static_cast<size_t>(impl_->options.corpus->num_sources()), 0);
  const std::vector<int64_t> per_lane = plan->LaneCellsOfRank();
  for (size_t l = 0; l < per_lane.size(); ++l) out[static_cast<size_t>(lanes->lanes[l].source)] += per_lane[l];
  return out;
}

std::vector<int64_t> Loader::BatchSourceCounts(int64_t epoch, int64_t max_batches) const {
  std::vector<int64_t> out;
  if (impl_->options.corpus == nullptr) return out;
  std::shared_ptr<const EpochSelection> lanes;
  auto plan = impl_->MakePlan(epoch, &lanes);
  if (!plan.ok()) return out;
  const size_t ns = static_cast<size_t>(impl_->options.corpus->num_sources());
  const int64_t nb = std::min(max_batches, plan->num_batches());
  out.assign(static_cast<size_t>(nb) * ns, 0);
  for (int64_t k = 0; k < plan->num_fetches() && k * plan->config().fetch_factor < nb; ++k) {
    const Fetch f = plan->GetFetch(k);
    for (size_t j = 0; j < f.batches.size(); ++j) {
      const int64_t b = k * plan->config().fetch_factor + static_cast<int64_t>(j);
      if (b >= nb) break;
      for (int32_t p : f.batches[j]) {
        const size_t src = static_cast<size_t>(lanes->lanes[static_cast<size_t>(f.lanes[static_cast<size_t>(p)])].source);
        ++out[static_cast<size_t>(b) * ns + src];
      }
    }
  }
  return out;
}

Status Loader::Start(int64_t epoch, int64_t start_batch,
                     const std::vector<InterruptedPass>& earlier) {
  Stop();
  Impl& m = *impl_;
  std::shared_ptr<const EpochSelection> lanes;
  std::optional<EpochPlan> cached;
  if (!earlier.empty()) {
    std::lock_guard<std::mutex> lock(m.cache_mu);
    if (m.cached_key && m.cached_key->first == epoch && m.cached_key->second == earlier) {
      cached = std::move(m.cached_plan);
      lanes = std::move(m.cached_lanes);
      m.cached_key.reset();
      m.cached_plan.reset();
    }
  }
  if (!cached) {
    CF_ASSIGN_OR_RETURN(auto made, m.MakePlan(epoch, &lanes, earlier));
    cached.emplace(std::move(made));
  }
  EpochPlan plan = std::move(*cached);
  if (start_batch < 0 || start_batch > plan.num_batches()) {
    return Status::OutOfRange("start batch " + std::to_string(start_batch) + " outside [0, " +
                              std::to_string(plan.num_batches()) + "]");
  }
  m.plan = std::move(plan);
  m.selection = std::move(lanes);
  m.epoch = epoch;
  int64_t first_fetch = m.plan->num_fetches(), skip = 0;
  if (start_batch < m.plan->num_batches()) {
    first_fetch = m.plan->FetchOfBatch(start_batch);
    skip = m.plan->BatchInFetch(start_batch);
  }
  m.first_fetch = first_fetch;
  m.skip_batches = skip;
  m.fetch_ids.clear();
  for (int64_t k = first_fetch; k < m.plan->num_fetches(); ++k) {
    if (k % m.options.num_workers == m.options.worker_id) m.fetch_ids.push_back(k);
  }
  m.window.Reset(static_cast<int64_t>(m.fetch_ids.size()));
  m.current = DecodedFetch{};
  m.current_seq = -1;
  m.next_in_current = 0;
  m.finished = false;
  m.num_producers = std::max(1, std::min(m.options.prefetch, 2));
  if (m.inputs_ahead) {
    m.inputs_ahead->Start([&m](const exec::FetchInputs& f, size_t j) { return m.TransformBatch(f, j); });
  }
  std::lock_guard<std::mutex> lock(m.lifecycle);
  for (int p = 0; p < m.num_producers; ++p) m.producers.emplace_back([&m] { m.Produce(); });
  return Status::OK();
}

Result<std::optional<Batch>> Loader::Next(std::chrono::milliseconds timeout) {
  Impl& m = *impl_;
  while (!m.finished) {
    if (m.next_in_current < m.current.batches.size()) {
      Batch& b = m.current.batches[m.next_in_current];
      if (m.inputs_ahead) {
        auto r = m.inputs_ahead->Take(m.current_seq, m.next_in_current, timeout);
        if (!r.ok()) {
          if (r.status().code() == StatusCode::kCancelled && r.status().message() == "timeout") return r.status();
          m.finished = true;
          Stop();
          return r.status();
        }
        b.inputs = std::move(r).value();
      }
      ++m.next_in_current;
      return std::optional<Batch>(std::move(b));
    }
    DecodedFetch item;
    using Pop = exec::OrderedWindow<DecodedFetch>::PopResult;
    switch (m.window.Pop(item, timeout)) {
      case Pop::kTimeout:
        return Status::Cancelled("timeout");
      case Pop::kEnd:
      case Pop::kClosed:
        m.finished = true;
        break;
      case Pop::kItem:
        if (!item.status.ok()) {
          m.finished = true;
          Stop();
          return item.status;
        }
        m.current = std::move(item);
        ++m.current_seq;
        m.next_in_current = 0;
        break;
    }
  }
  m.StopProducers();
  return std::optional<Batch>();
}

void Loader::Stop() {
  impl_->StopProducers();
  impl_->finished = true;
}

}  // namespace cellfeed
