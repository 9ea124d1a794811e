#include "cellfeed/loader.h"

#include <atomic>
#include <thread>

#include "exec/bounded_queue.h"

namespace cellfeed {

namespace {

// What the producer hands the consumer: one decoded fetch cut into batches, or the
// error that ended the epoch.
struct DecodedFetch {
  Status status;
  std::vector<Batch> batches;
};

}  // namespace

struct Loader::Impl {
  std::shared_ptr<const Collection> collection;
  LoaderOptions options;
  std::vector<int64_t> file_sizes;
  std::optional<EpochPlan> plan;
  int64_t batches_per_epoch = 0;

  exec::BoundedQueue<DecodedFetch> queue;
  std::thread producer;
  std::atomic<bool> stop{false};

  // Consumer side.
  DecodedFetch current;
  size_t next_in_current = 0;
  bool finished = true;

  explicit Impl(size_t capacity) : queue(capacity) {}

  void Produce(int64_t first_fetch, int64_t skip_batches);
  Result<DecodedFetch> DecodeFetch(const Fetch& fetch, int64_t skip_batches) const;
  void StopProducer() {
    stop = true;
    queue.Close();
    if (producer.joinable()) producer.join();
  }
};

Result<DecodedFetch> Loader::Impl::DecodeFetch(const Fetch& fetch, int64_t skip_batches) const {
  // Rows in batch order: the read decodes each chunk once, batches become slices.
  auto rows = std::make_shared<std::vector<int64_t>>();
  rows->reserve(fetch.rows.size());
  for (const auto& b : fetch.batches)
    for (int32_t p : b) rows->push_back(fetch.rows[static_cast<size_t>(p)]);
  CF_ASSIGN_OR_RETURN(CsrMatrix X, collection->Read(*rows));
  auto matrix = std::make_shared<const CsrMatrix>(std::move(X));
  auto obs = std::make_shared<std::vector<Column>>();
  for (const std::string& name : options.obs_columns) {
    CF_ASSIGN_OR_RETURN(Column c, collection->Obs(name, std::span<const int64_t>(*rows)));
    obs->push_back(std::move(c));
  }
  DecodedFetch out;
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
      out.batches.push_back(std::move(b));
    }
    begin += n;
  }
  return out;
}

void Loader::Impl::Produce(int64_t first_fetch, int64_t skip_batches) {
  const int64_t n = plan->num_fetches();
  for (int64_t k = first_fetch; k < n && !stop; ++k) {
    if (k % options.num_workers != options.worker_id) continue;
    DecodedFetch item;
    try {
      auto decoded = DecodeFetch(plan->GetFetch(k), k == first_fetch ? skip_batches : 0);
      if (decoded.ok()) {
        item = std::move(decoded).value();
      } else {
        item.status = decoded.status();
      }
    } catch (const std::exception& e) {  // allocation failure and the like
      item.status = Status::IOError(std::string("loader stopped: ") + e.what());
    }
    const bool failed = !item.status.ok();
    if (!queue.Push(std::move(item)) || failed) break;
  }
  queue.Close();
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
  auto impl = std::make_unique<Impl>(static_cast<size_t>(options.prefetch));
  impl->collection = std::move(collection);
  impl->options = options;
  const auto& offsets = impl->collection->file_offsets();
  for (size_t f = 0; f + 1 < offsets.size(); ++f) {
    impl->file_sizes.push_back(offsets[f + 1] - offsets[f]);
  }
  // Validate the configuration once, and learn the epoch length (the same every epoch).
  CF_ASSIGN_OR_RETURN(auto plan, EpochPlan::Make(impl->file_sizes, options.sampling, 0,
                                                 options.rank, options.world_size));
  impl->batches_per_epoch = plan.num_batches();
  return std::unique_ptr<Loader>(new Loader(std::move(impl)));
}

int64_t Loader::num_batches() const { return impl_->batches_per_epoch; }
const LoaderOptions& Loader::options() const { return impl_->options; }

Status Loader::Start(int64_t epoch, int64_t start_batch) {
  Stop();
  Impl& m = *impl_;
  CF_ASSIGN_OR_RETURN(auto plan, EpochPlan::Make(m.file_sizes, m.options.sampling, epoch,
                                                 m.options.rank, m.options.world_size));
  if (start_batch < 0 || start_batch > plan.num_batches()) {
    return Status::OutOfRange("start batch " + std::to_string(start_batch) + " outside [0, " +
                              std::to_string(plan.num_batches()) + "]");
  }
  m.plan = std::move(plan);
  int64_t first_fetch = m.plan->num_fetches(), skip = 0;
  if (start_batch < m.plan->num_batches()) {
    first_fetch = m.plan->FetchOfBatch(start_batch);
    skip = m.plan->BatchInFetch(start_batch);
  }
  m.queue.Reset();
  m.stop = false;
  m.current = DecodedFetch{};
  m.next_in_current = 0;
  m.finished = false;
  m.producer = std::thread([&m, first_fetch, skip] { m.Produce(first_fetch, skip); });
  return Status::OK();
}

Result<std::optional<Batch>> Loader::Next(std::chrono::milliseconds timeout) {
  Impl& m = *impl_;
  while (!m.finished) {
    if (m.next_in_current < m.current.batches.size()) {
      return std::optional<Batch>(std::move(m.current.batches[m.next_in_current++]));
    }
    DecodedFetch item;
    switch (m.queue.Pop(item, timeout)) {
      case exec::BoundedQueue<DecodedFetch>::PopResult::kTimeout:
        return Status::Cancelled("timeout");
      case exec::BoundedQueue<DecodedFetch>::PopResult::kClosed:
        m.finished = true;
        break;
      case exec::BoundedQueue<DecodedFetch>::PopResult::kItem:
        if (!item.status.ok()) {
          m.finished = true;
          Stop();
          return item.status;
        }
        m.current = std::move(item);
        m.next_in_current = 0;
        break;
    }
  }
  if (m.producer.joinable()) m.producer.join();
  return std::optional<Batch>();
}

void Loader::Stop() {
  impl_->StopProducer();
  impl_->finished = true;
}

}  // namespace cellfeed
