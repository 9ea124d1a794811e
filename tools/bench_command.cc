// `cellfeed bench FILE... [--batch-size N] [--block-size N|chunk] [--fetch-factor N] [--label COL]
//  [--seconds S] [--warmup S] [--threads N] [--seed N] [--layer NAME] [--epochs N]
//  [--min-fetches N] [--limit] [--json]`
//
// Streams epochs of the Loader for --seconds and --min-fetches fetches (default 8), or
// --epochs, whichever ends first (one epoch
// from a cold page cache is a cold run) after --warmup seconds and reports cells/s,
// MB/s of decoded data (values + column indices + row pointers handed out), and the mean
// and population standard deviation of the per-batch Shannon entropy (bits) of --label,
// the scDataset paper's diversity metric. --limit then replays the fetches consumed while
// measuring as a read-and-decode-only pass (Collection::MeasureReadCost) and reports
// cellfeed's throughput as a fraction of that hardware floor (uncompressed bytes copied
// into fetch buffers), and of the same replay into a cache-resident scratch buffer.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "cellfeed/loader.h"
#include "commands.h"
#include "json_writer.h"

namespace cellfeed::tools {

namespace {

double EntropyBits(const Column& labels, int64_t begin, int64_t end) {
  std::map<int64_t, int64_t> counts;
  std::vector<int64_t> v(static_cast<size_t>(end - begin));
  ConvertElements(labels.info.dtype, labels.values.data() + begin * DTypeSize(labels.info.dtype),
                  DType::kInt64, v.data(), v.size());
  for (int64_t x : v) ++counts[x];
  double h = 0;
  for (const auto& [label, c] : counts) {
    const double p = static_cast<double>(c) / static_cast<double>(v.size());
    h -= p * std::log2(p);
  }
  return h;
}

bool ParseInt(const std::string& s, int64_t& out) {
  try {
    size_t used = 0;
    out = std::stoll(s, &used);
    return used == s.size();
  } catch (...) {
    return false;
  }
}

}  // namespace

int BenchCommand(const std::vector<std::string>& args) {
  LoaderOptions lo;
  OpenOptions oo;
  std::string label;
  double seconds = 10, warmup = 1;
  int64_t max_epochs = 0;  // 0: as many as --seconds allows
  // The window spans at least this many fetches: fetches decoded ahead during warm-up
  // would otherwise count as free work when fetches are slow.
  int64_t min_fetches = 8;
  bool json = false, limit = false;
  std::vector<std::string> files;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](int64_t& out) {
      if (i + 1 >= args.size() || !ParseInt(args[i + 1], out)) {
        std::fprintf(stderr, "cellfeed bench: %s needs an integer\n", a.c_str());
        return false;
      }
      ++i;
      return true;
    };
    int64_t v = 0;
    if (a == "--json") {
      json = true;
    } else if (a == "--limit") {
      limit = true;
    } else if (a == "--batch-size") {
      if (!value(lo.sampling.batch_size)) return 2;
    } else if (a == "--block-size" && i + 1 < args.size() && args[i + 1] == "chunk") {
      lo.sampling.chunk_blocks = true;  // one block per storage chunk
      ++i;
    } else if (a == "--block-size") {
      if (!value(lo.sampling.block_size)) return 2;
    } else if (a == "--fetch-factor") {
      if (!value(lo.sampling.fetch_factor)) return 2;
    } else if (a == "--threads") {
      if (!value(v)) return 2;
      oo.threads = static_cast<int>(v);
    } else if (a == "--min-fetches") {
      if (!value(min_fetches)) return 2;
    } else if (a == "--epochs") {
      if (!value(max_epochs)) return 2;
    } else if (a == "--seed") {
      if (!value(v)) return 2;
      lo.sampling.seed = static_cast<uint64_t>(v);
    } else if (a == "--seconds" || a == "--warmup") {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "cellfeed bench: %s needs a number\n", a.c_str());
        return 2;
      }
      (a == "--seconds" ? seconds : warmup) = std::atof(args[++i].c_str());
    } else if (a == "--label" && i + 1 < args.size()) {
      label = args[++i];
    } else if (a == "--layer" && i + 1 < args.size()) {
      oo.layer = args[++i];
    } else if (a == "--values" && i + 1 < args.size()) {
      oo.values = args[++i];
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "cellfeed bench: unknown option '%s'\n", a.c_str());
      return 2;
    } else {
      files.push_back(a);
    }
  }
  if (files.empty()) {
    std::fprintf(stderr, "usage: cellfeed bench FILE... [--batch-size N] [--block-size N|chunk] "
                         "[--fetch-factor N] [--label COLUMN] [--seconds S] [--warmup S] "
                         "[--threads N] [--seed N] [--layer NAME] [--values finite|counts|any] [--epochs N] [--min-fetches N] [--limit] "
                         "[--json]\n");
    return 2;
  }
  auto col = Collection::Open(files, oo);
  if (!col.ok()) {
    std::fprintf(stderr, "cellfeed bench: error: %s\n", col.status().message().c_str());
    return 1;
  }
  if (!label.empty()) lo.obs_columns = {label};
  auto loader = Loader::Make(col.value(), lo);
  if (!loader.ok()) {
    std::fprintf(stderr, "cellfeed bench: error: %s\n", loader.status().message().c_str());
    return 1;
  }
  Loader& l = *loader.value();
  using Clock = std::chrono::steady_clock;
  const auto t_start = Clock::now();
  auto t_measure = t_start;
  bool measuring = warmup <= 0;
  int64_t cells = 0, batches = 0, bytes = 0, epochs = 0;
  double h_sum = 0, h_sq = 0;
  double elapsed = 0;
  // The fetches consumed while measuring, replayed decode-only for --limit.
  std::vector<std::vector<int64_t>> fetches;
  const std::vector<int64_t>* last_fetch = nullptr;
  int64_t fetches_seen = 0;
  for (int64_t epoch = 0;; ++epoch) {
    if (Status st = l.Start(epoch); !st.ok()) {
      std::fprintf(stderr, "cellfeed bench: error: %s\n", st.message().c_str());
      return 1;
    }
    ++epochs;
    bool done = false;
    for (;;) {
      auto b = l.Next();
      if (!b.ok()) {
        std::fprintf(stderr, "cellfeed bench: error: %s\n", b.status().message().c_str());
        return 1;
      }
      if (!b.value()) break;
      const Batch& batch = *b.value();
      const auto now = Clock::now();
      if (!measuring && std::chrono::duration<double>(now - t_start).count() >= warmup) {
        measuring = true;
        t_measure = now;
        continue;  // this batch was produced during warm-up
      }
      if (!measuring) continue;
      if (batch.fetch_rows.get() != last_fetch) {
        last_fetch = batch.fetch_rows.get();
        ++fetches_seen;
        if (limit) fetches.push_back(*batch.fetch_rows);
      }
      const int64_t nnz = batch.fetch->indptr[batch.row_end] - batch.fetch->indptr[batch.row_begin];
      cells += batch.size();
      bytes += nnz * 8 + (batch.size() + 1) * 8;
      ++batches;
      if (!label.empty()) {
        const double h = EntropyBits((*batch.fetch_obs)[0], batch.row_begin, batch.row_end);
        h_sum += h;
        h_sq += h * h;
      }
      elapsed = std::chrono::duration<double>(now - t_measure).count();  // up to this batch
      if (elapsed >= seconds && fetches_seen > min_fetches) {
        done = true;
        break;
      }
    }
    l.Stop();
    if (done || (max_epochs > 0 && epoch + 1 >= max_epochs)) break;
  }
  const double mean = batches ? h_sum / static_cast<double>(batches) : 0;
  const double sd = batches ? std::sqrt(std::max(0.0, h_sq / static_cast<double>(batches) - mean * mean)) : 0;
  const double cps = elapsed > 0 ? static_cast<double>(cells) / elapsed : 0;
  const double mbps = elapsed > 0 ? static_cast<double>(bytes) / elapsed / 1e6 : 0;
  // The limit delivers uncompressed bytes into fetch buffers; the scratch replay, which
  // copies them into a cache-resident buffer instead, is reported beside it.
  ReadCost cost, scratch;
  double limit_cps = 0, scratch_cps = 0;
  if (limit) {
    auto replay = [&](ReplayDestination dest, ReadCost& out) {
      auto c = col.value()->MeasureReadCost(fetches, dest);
      if (!c.ok()) {
        std::fprintf(stderr, "cellfeed bench: error: %s\n", c.status().message().c_str());
        return false;
      }
      out = c.value();
      return true;
    };
    if (!replay(ReplayDestination::kFetchBuffers, cost)) return 1;
    scratch = cost;  // nothing uncompressed: the two replays are the same work
    if (cost.bytes_delivered > 0 && !replay(ReplayDestination::kScratch, scratch)) return 1;
    limit_cps = cost.seconds > 0 ? static_cast<double>(cost.cells) / cost.seconds : 0;
    scratch_cps = scratch.seconds > 0 ? static_cast<double>(scratch.cells) / scratch.seconds : 0;
  }
  if (json) {
    JsonWriter w;
    w.BeginObject();
    w.Key("files"); w.Int(static_cast<long long>(files.size()));
    w.Key("n_obs"); w.Int(col.value()->n_obs());
    w.Key("batch_size"); w.Int(lo.sampling.batch_size);
    w.Key("block_size");
    if (lo.sampling.chunk_blocks) {
      w.String("chunk");
    } else {
      w.Int(lo.sampling.block_size);
    }
    w.Key("fetch_factor"); w.Int(lo.sampling.fetch_factor);
    w.Key("threads"); w.Int(col.value()->threads());
    w.Key("seconds"); w.Double(elapsed);
    w.Key("batches"); w.Int(batches);
    w.Key("cells"); w.Int(cells);
    w.Key("epochs_started"); w.Int(epochs);
    w.Key("cells_per_second"); w.Double(cps);
    w.Key("decoded_mb_per_second"); w.Double(mbps);
    if (limit) {
      w.Key("limit_cells_per_second"); w.Double(limit_cps);
      w.Key("fraction_of_limit"); w.Double(limit_cps > 0 ? cps / limit_cps : 0);
      w.Key("limit_chunks"); w.Int(cost.chunks);
      w.Key("limit_bytes_read"); w.Int(cost.bytes_read);
      w.Key("limit_bytes_decoded"); w.Int(cost.bytes_decoded);
      w.Key("limit_seconds"); w.Double(cost.seconds);
      w.Key("limit_bytes_delivered"); w.Int(cost.bytes_delivered);
      w.Key("scratch_limit_cells_per_second"); w.Double(scratch_cps);
      w.Key("fraction_of_scratch_limit"); w.Double(scratch_cps > 0 ? cps / scratch_cps : 0);
    }
    if (!label.empty()) {
      w.Key("label"); w.String(label);
      w.Key("entropy_bits_mean"); w.Double(mean);
      w.Key("entropy_bits_std"); w.Double(sd);
    }
    w.EndObject();
    std::printf("%s\n", w.str().c_str());
  } else {
    const std::string b = lo.sampling.chunk_blocks ? std::string("chunk")
                                                   : std::to_string(lo.sampling.block_size);
    std::printf("%lld cells in %lld batches over %.2f s (%d threads, b=%s, f=%lld, batch %lld)\n",
                (long long)cells, (long long)batches, elapsed, col.value()->threads(), b.c_str(),
                (long long)lo.sampling.fetch_factor,
                (long long)lo.sampling.batch_size);
    std::printf("throughput: %.0f cells/s, %.1f MB/s decoded\n", cps, mbps);
    if (limit) {
      std::printf("hardware limit of the same fetches (read + decode only, %d threads): %.0f "
                  "cells/s (%lld chunks, %.1f MB read, %.1f MB decoded, %.1f MB delivered in "
                  "%.2f s); cellfeed at %.0f%% of it\n",
                  col.value()->threads(), limit_cps, (long long)cost.chunks, cost.bytes_read / 1e6,
                  cost.bytes_decoded / 1e6, cost.bytes_delivered / 1e6, cost.seconds,
                  limit_cps > 0 ? 100 * cps / limit_cps : 0);
      std::printf("the same into a cache-resident scratch buffer: %.0f cells/s; cellfeed at "
                  "%.0f%% of it\n",
                  scratch_cps, scratch_cps > 0 ? 100 * cps / scratch_cps : 0);
    }
    if (!label.empty()) {
      std::printf("entropy of '%s' per batch: %.3f +/- %.3f bits\n", label.c_str(), mean, sd);
    }
  }
  return 0;
}

}  // namespace cellfeed::tools
