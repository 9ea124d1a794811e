// `cellfeed bench FILE... [--batch-size N] [--block-size N|chunk] [--fetch-factor N] [--label COL]
//  [--seconds S] [--warmup S] [--threads N] [--seed N] [--layer NAME] [--values V] [--epochs N]
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
// On a terminal, a progress line on stderr shows the seconds and cells so far.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cellfeed/loader.h"
#include "commands.h"
#include "json_writer.h"
#include "option_checks.h"
#include "progress.h"

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

struct BenchArgs {
  std::vector<std::string> files;
  LoaderOptions lo;
  OpenOptions oo;
  std::string label, block_size;
  double seconds = 10, warmup = 1;
  int64_t max_epochs = 0;  // 0: as many as --seconds allows
  // The window spans at least this many fetches: fetches decoded ahead during warm-up
  // would otherwise count as free work when fetches are slow.
  int64_t min_fetches = 8;
  bool json = false, limit = false;
};

int Fail(ProgressLine& progress, const std::string& message) {
  progress.Clear();
  std::fprintf(stderr, "cellfeed bench: error: %s\n", message.c_str());
  return 1;
}

int RunBench(BenchArgs& a) {
  ProgressLine progress;
  LoaderOptions& lo = a.lo;
  const OpenOptions& oo = a.oo;
  const std::vector<std::string>& files = a.files;
  const std::string& label = a.label;
  const double seconds = a.seconds, warmup = a.warmup;
  const int64_t max_epochs = a.max_epochs, min_fetches = a.min_fetches;
  const bool json = a.json, limit = a.limit;
  if (a.block_size == "chunk") {
    lo.sampling.chunk_blocks = true;  // one block per storage chunk
  } else {
    lo.sampling.block_size = std::stoll(a.block_size);  // checked by Integer(1, "chunk")
  }
  if (progress.Due()) progress.Draw("bench: opening " + std::to_string(files.size()) + " file(s)");
  auto col = Collection::Open(files, oo);
  if (!col.ok()) {
    return Fail(progress, col.status().message());
  }
  if (!label.empty()) lo.obs_columns = {label};
  auto loader = Loader::Make(col.value(), lo);
  if (!loader.ok()) {
    return Fail(progress, loader.status().message());
  }
  Loader& l = *loader.value();
  progress.Clear();  // opened: the first batch's line is drawn at once
  using Clock = std::chrono::steady_clock;
  const auto t_start = Clock::now();
  auto t_measure = t_start;
  bool measuring = warmup <= 0;
  int64_t cells = 0, batches = 0, bytes = 0, epochs = 0;
  double h_sum = 0, h_sq = 0;
  double elapsed = 0;
  // The fetches consumed while measuring, replayed decode-only for --limit.
  std::vector<std::vector<int64_t>> fetches;
  // A fetch is known by its epoch and number in it (Batch::index / fetch_factor), not by
  // the address of its rows: the next epoch's fetch often reuses a freed one's memory, and
  // was then not counted (--seconds 0.1 ran for minutes on a one-fetch file).
  int64_t last_epoch = -1, last_fetch = -1;
  int64_t fetches_seen = 0;
  for (int64_t epoch = 0;; ++epoch) {
    if (Status st = l.Start(epoch); !st.ok()) {
      return Fail(progress, st.message());
    }
    ++epochs;
    bool done = false;
    for (;;) {
      auto b = l.Next();
      if (!b.ok()) {
        return Fail(progress, b.status().message());
      }
      if (!b.value()) break;
      const Batch& batch = *b.value();
      const auto now = Clock::now();
      if (progress.Due(now)) {
        char line[160];
        const double t = std::chrono::duration<double>(now - (measuring ? t_measure : t_start)).count();
        if (measuring) {
          std::snprintf(line, sizeof line, "bench: %.1f / %g s, %lld cells, %.0f cells/s, epoch %lld",
                        t, seconds, (long long)cells, t > 0 ? cells / t : 0.0, (long long)epoch + 1);
        } else {
          std::snprintf(line, sizeof line, "bench: warming up, %.1f / %g s", t, warmup);
        }
        progress.Draw(line, now);
      }
      if (!measuring && std::chrono::duration<double>(now - t_start).count() >= warmup) {
        measuring = true;
        t_measure = now;
        continue;  // this batch was produced during warm-up
      }
      if (!measuring) continue;
      const int64_t fetch_number = batch.index / lo.sampling.fetch_factor;
      if (epoch != last_epoch || fetch_number != last_fetch) {
        last_epoch = epoch;
        last_fetch = fetch_number;
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
    if (progress.enabled()) {
      progress.Draw("bench: replaying " + std::to_string(fetches.size()) +
                    " fetches read-and-decode-only (--limit)");
    }
    auto replay = [&](ReplayDestination dest, ReadCost& out) {
      auto c = col.value()->MeasureReadCost(fetches, dest);
      if (!c.ok()) {
        Fail(progress, c.status().message());
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
  progress.Clear();
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

}  // namespace

Command AddBenchCommand(CLI::App& root) {
  auto a = std::make_shared<BenchArgs>();
  SamplingConfig& s = a->lo.sampling;
  a->block_size = std::to_string(s.block_size);
  CLI::App* app = root.add_subcommand(
      "bench", "loader throughput (cells/s, MB/s decoded) and per-batch label entropy");
  app->footer("Streams epochs for --seconds (and --min-fetches fetches) after --warmup, or --epochs.\n"
              "On a terminal, a progress line on stderr shows the seconds and cells so far.");
  app->add_option("FILE", a->files, "h5ad files or zarr stores, read as one collection")
      ->required()
      ->type_name("PATH");
  app->add_flag("--json", a->json, "print the report as one JSON object");
  app->add_option("--batch-size", s.batch_size, "cells per batch")
      ->type_name("N")->check(Integer(1))->capture_default_str();
  app->add_option("--block-size", a->block_size,
                  "consecutive cells per sampled block, or 'chunk': one block per storage chunk")
      ->type_name("N|chunk")->check(Integer(1, "chunk"))->capture_default_str();
  app->add_option("--fetch-factor", s.fetch_factor, "batches per fetch (read and shuffled together)")
      ->type_name("N")->check(Integer(1))->capture_default_str();
  app->add_option("--seed", s.seed, "the sampling seed")
      ->type_name("N")->check(Integer(0))->capture_default_str();
  app->add_option("--label", a->label, "an obs column: report the mean and sd of its per-batch entropy (bits)")
      ->type_name("COLUMN");
  app->add_option("--seconds", a->seconds, "measure for this long (after --warmup)")
      ->type_name("S")->check(Number(0))->capture_default_str();
  app->add_option("--warmup", a->warmup, "seconds of batches not counted first")
      ->type_name("S")->check(Number(0))->capture_default_str();
  app->add_option("--epochs", a->max_epochs, "stop after this many epochs; 0: no limit but --seconds")
      ->type_name("N")->check(Integer(0))->capture_default_str();
  app->add_option("--min-fetches", a->min_fetches,
                  "measure over more than this many fetches even past --seconds")
      ->type_name("N")->check(Integer(0))->capture_default_str();
  app->add_flag("--limit", a->limit,
                "replay the measured fetches read-and-decode-only and report cellfeed's "
                "throughput as a fraction of that hardware limit");
  AddOpenOptions(app, a->oo, "read");
  return {app, [a] { return RunBench(*a); }};
}

}  // namespace cellfeed::tools
