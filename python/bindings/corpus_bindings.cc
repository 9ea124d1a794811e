// Bindings of cellfeed::Corpus: the Python Corpus hands its declaration over as plain
// dicts; evaluation (filters, splits, quotas) runs in C++ with the GIL released.
#include <nanobind/stl/map.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "cellfeed/corpus.h"
#include "cellfeed/qc_metrics.h"
#include "convert.h"

namespace cellfeed::python {

namespace {

template <typename T>
T Get(const nb::dict& d, const char* key, T fallback) {
  if (!d.contains(key) || d[key].is_none()) return fallback;
  return nb::cast<T>(d[key]);
}

SourceSpec SourceFromDict(const nb::dict& d) {
  SourceSpec s;
  s.name = Get<std::string>(d, "name", "");
  s.files = Get<std::vector<int>>(d, "files", {});
  if (d.contains("files_collection") && !d["files_collection"].is_none()) {
    s.files_collection = nb::cast<std::shared_ptr<Collection>>(d["files_collection"]);
  }
  s.where = Get<std::string>(d, "where", "");
  if (d.contains("cells") && !d["cells"].is_none()) {
    s.quota = QuotaKind::kCount;
    s.count = nb::cast<int64_t>(d["cells"]);
  } else if (d.contains("weight") && !d["weight"].is_none()) {
    s.quota = QuotaKind::kWeight;
    s.weight = nb::cast<double>(d["weight"]);
  }
  s.upsample = Get<bool>(d, "upsample", false);
  s.split = Get<std::string>(d, "split", "");
  s.balance_by = Get<std::string>(d, "balance_by", "");
  const std::string balance = Get<std::string>(d, "balance", "");
  if (balance == "equal") s.balance = BalanceKind::kEqual;
  else if (balance == "scaled") s.balance = BalanceKind::kScaled;
  else if (!balance.empty()) ThrowIfError(Status::Invalid("source '" + s.name + "': balance must be 'equal' or 'scaled', got '" + balance + "'"));
  if (!s.balance_by.empty() && s.balance == BalanceKind::kNone) s.balance = BalanceKind::kEqual;
  s.balance_scale = Get<double>(d, "balance_scale", 0);
  s.weight_column = Get<std::string>(d, "weight_column", "");
  return s;
}

using FloatArray = nb::ndarray<const float, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

// The declaration as the Python Corpus hands it over (sources as dicts, options,
// per-cell extra columns such as QC metrics).
CorpusSpec SpecFromPython(const Collection& collection, nb::list sources, nb::dict options,
                          nb::dict extra_columns) {
  CorpusSpec spec;
  for (nb::handle h : sources) spec.sources.push_back(SourceFromDict(nb::cast<nb::dict>(h)));
  spec.epoch_cells = Get<int64_t>(options, "epoch_cells", 0);
  spec.temperature = Get<double>(options, "temperature", 0);
  spec.resample_each_epoch = Get<std::string>(options, "subsample", "fixed") == "epoch";
  spec.seed = Get<uint64_t>(options, "seed", 0);
  const std::string mode = Get<std::string>(options, "subsample", "fixed");
  if (mode != "fixed" && mode != "epoch") {
    ThrowIfError(Status::Invalid("corpus: subsample must be 'fixed' or 'epoch', got '" + mode + "'"));
  }
  if (options.contains("split") && !options["split"].is_none()) {
    nb::dict sd = nb::cast<nb::dict>(options["split"]);
    spec.split.by = Get<std::string>(sd, "by", "");
    spec.split.val = Get<std::vector<std::string>>(sd, "val", {});
    spec.split.test = Get<std::vector<std::string>>(sd, "test", {});
    if (sd.contains("fractions") && !sd["fractions"].is_none()) {
      auto f = nb::cast<std::map<std::string, double>>(sd["fractions"]);
      spec.split.by_fraction = true;
      spec.split.train = f.count("train") ? f["train"] : 0;
      spec.split.val_fraction = f.count("val") ? f["val"] : 0;
      spec.split.test_fraction = f.count("test") ? f["test"] : 0;
      for (const auto& [k, v] : f) {
        if (k != "train" && k != "val" && k != "test") {
          ThrowIfError(Status::Invalid("corpus: split fractions take train, val, test; got '" + k + "'"));
        }
      }
    }
    spec.split.seed = Get<uint64_t>(sd, "seed", spec.seed);
    spec.split.leakage_columns = Get<std::vector<std::string>>(sd, "leakage_columns", {});
  }
  for (auto [k, v] : extra_columns) {
    FloatArray a = nb::cast<FloatArray>(v);
    auto vec = std::make_shared<std::vector<float>>(a.data(), a.data() + a.shape(0));
    if (static_cast<int64_t>(vec->size()) != collection.n_obs()) {
      ThrowIfError(Status::Invalid("corpus: column '" + nb::cast<std::string>(k) + "' has " +
                                   std::to_string(vec->size()) + " values for " +
                                   std::to_string(collection.n_obs()) + " cells"));
    }
    spec.extra_columns[nb::cast<std::string>(k)] = std::move(vec);
  }
  return spec;
}


}  // namespace

void BindCorpus(nb::module_& m) {
  m.def(
      "qc_metrics",
      [](std::shared_ptr<Collection> collection, std::vector<uint8_t> flagged) {
        Result<QcMetrics> r = Status::OK();
        {
          nb::gil_scoped_release release;
          r = ComputeQcMetrics(*collection, flagged);
        }
        QcMetrics q = ValueOrThrow(std::move(r));
        return nb::make_tuple(ToNumpy(std::move(q.total_counts)), ToNumpy(std::move(q.n_genes_by_counts)),
                              ToNumpy(std::move(q.pct_counts_flagged)));
      },
      nb::arg("collection"), nb::arg("flagged"));

  nb::class_<Corpus>(m, "Corpus")
      .def_static(
          "make",
          [](std::shared_ptr<Collection> collection, nb::list sources, nb::dict options,
             nb::dict extra_columns) {
            CorpusSpec spec = SpecFromPython(*collection, sources, options, extra_columns);
            Result<std::shared_ptr<const Corpus>> r = Status::OK();
            {
              nb::gil_scoped_release release;
              r = Corpus::Make(std::move(collection), std::move(spec));
            }
            return std::const_pointer_cast<Corpus>(ValueOrThrow(std::move(r)));
          },
          nb::arg("collection"), nb::arg("sources"), nb::arg("options"), nb::arg("extra_columns"))
      .def(
          "with_collection",
          [](const Corpus& c, std::shared_ptr<Collection> collection) {
            return std::const_pointer_cast<Corpus>(ValueOrThrow(c.WithCollection(std::move(collection))));
          },
          nb::arg("collection"))
      .def(
          "save",
          [](const Corpus& c) {
            std::string bytes;
            {
              nb::gil_scoped_release release;
              bytes = c.Save();
            }
            return nb::bytes(bytes.data(), bytes.size());
          })
      .def_static(
          "restore",
          [](std::shared_ptr<Collection> collection, nb::list sources, nb::dict options, nb::bytes saved) {
            CorpusSpec spec = SpecFromPython(*collection, sources, options, nb::dict());
            // A view: `saved` stays referenced by the caller while the GIL is released.
            std::string_view bytes(saved.c_str(), saved.size());
            Result<std::shared_ptr<const Corpus>> r = Status::OK();
            {
              nb::gil_scoped_release release;
              r = Corpus::Restore(std::move(collection), std::move(spec), bytes);
            }
            return std::const_pointer_cast<Corpus>(ValueOrThrow(std::move(r)));
          },
          nb::arg("collection"), nb::arg("sources"), nb::arg("options"), nb::arg("saved"))
      .def("counts",
           [](const Corpus& c) {
             nb::list out;
             for (const SourceCounts& k : c.counts()) {
               nb::dict d;
               d["source"] = k.name;
               d["in_files"] = k.in_files;
               d["passing"] = k.passing;
               d["train"] = k.train;
               d["val"] = k.val;
               d["test"] = k.test;
               d["requested"] = k.requested;
               d["full_copies"] = k.full_copies;
               d["extra_cells"] = k.extra_cells;
               out.append(d);
             }
             return out;
           })
      .def("leaks",
           [](const Corpus& c) {
             nb::list out;
             for (const LeakedValue& l : c.leaks()) out.append(nb::make_tuple(l.column, l.value, l.splits));
             return out;
           })
      .def("class_targets",
           [](const Corpus& c) {
             nb::list out;
             for (const auto& per_source : c.class_targets()) {
               nb::list s;
               for (const auto& t : per_source) s.append(nb::make_tuple(t.value, t.available, t.target));
               out.append(s);
             }
             return out;
           })
      .def("split_rows",
           [](const Corpus& c, int source, const std::string& split) {
             auto sel = ValueOrThrow(c.SplitRows(source, split));
             std::vector<int64_t> rows;
             rows.reserve(static_cast<size_t>(sel->count()));
             sel->ForEach(0, sel->size(), [&](int64_t r) { rows.push_back(r); });
             return ToNumpy(std::move(rows));
           })
      .def("epoch_lanes",
           [](const Corpus& c, const std::string& split, int64_t epoch) {
             // (source, copy, rows) per lane: what one epoch of the split delivers.
             auto sel = ValueOrThrow(c.ForEpoch(split, epoch));
             nb::list out;
             for (const SelectionLane& l : sel->lanes) {
               std::vector<int64_t> rows;
               rows.reserve(static_cast<size_t>(l.rows->count()));
               l.rows->ForEach(0, l.rows->size(), [&](int64_t r) { rows.push_back(r); });
               out.append(nb::make_tuple(l.source, l.copy, ToNumpy(std::move(rows))));
             }
             return out;
           })
      .def("lane_counts",
           [](const Corpus& c, const std::string& split, int64_t epoch) {
             auto sel = ValueOrThrow(c.ForEpoch(split, epoch));
             std::vector<int64_t> per_source(static_cast<size_t>(c.num_sources()), 0);
             for (const SelectionLane& l : sel->lanes) per_source[static_cast<size_t>(l.source)] += l.rows->count();
             return per_source;
           });
}

}  // namespace cellfeed::python
