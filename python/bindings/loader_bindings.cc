// Bindings of cellfeed::Loader. Batches are numpy views into their fetch's decoded
// buffers (the capsule keeps the fetch alive); waiting releases the GIL and wakes every
// 100 ms to let Ctrl-C through.
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <limits>

#include "cellfeed/loader.h"
#include "convert.h"

namespace cellfeed::python {

nb::object InputsToPython(const Batch& b);  // transform_bindings.cc

namespace {

// A writable view of `n` elements at `ptr`, keeping `keep` alive while numpy uses it.
template <typename T>
nb::ndarray<nb::numpy, T, nb::ndim<1>> View(const T* ptr, size_t n, std::shared_ptr<const void> keep) {
  auto* holder = new std::shared_ptr<const void>(std::move(keep));
  nb::capsule owner(holder, [](void* p) noexcept {
    delete static_cast<std::shared_ptr<const void>*>(p);
  });
  size_t shape[1] = {n};
  return nb::ndarray<nb::numpy, T, nb::ndim<1>>(const_cast<T*>(ptr), 1, shape, owner);
}

nb::object ColumnSlice(const Column& c, int64_t begin, int64_t end,
                       const std::shared_ptr<const std::vector<Column>>& keep) {
  const size_t n = static_cast<size_t>(end - begin);
  if (!c.strings.empty() || c.info.kind == ColumnKind::kString ||
      c.info.kind == ColumnKind::kNullableString) {
    nb::list out;
    for (int64_t i = begin; i < end; ++i) {
      if (!c.mask.empty() && c.mask[i]) {
        out.append(nb::none());
      } else {
        out.append(c.strings[static_cast<size_t>(i)]);
      }
    }
    return out;
  }
  const size_t es = DTypeSize(c.info.dtype);
  nb::object bytes = nb::cast(View(c.values.data() + begin * es, n * es, keep));
  return bytes.attr("view")(DTypeName(c.info.dtype));
}

// Sparse batches get an int32 indptr when their nonzeros fit: scipy would otherwise
// downcast it (a copy and ~4 us per batch), and torch needs it to match int32 indices.
nb::object BatchToPython(const Batch& b, bool dense) {
  const CsrMatrix& m = *b.fetch;
  const int64_t n = b.size();
  const int64_t lo = m.indptr[b.row_begin], hi = m.indptr[b.row_end];
  nb::object X;
  if (dense) {
    std::vector<float> out(static_cast<size_t>(n * m.n_cols), 0.0f);
    {
      nb::gil_scoped_release release;
      for (int64_t r = 0; r < n; ++r) {
        float* row = out.data() + r * m.n_cols;
        for (int64_t o = m.indptr[b.row_begin + r]; o < m.indptr[b.row_begin + r + 1]; ++o) {
          row[m.indices[o]] += m.data[o];
        }
      }
    }
    nb::object flat = nb::cast(ToNumpy(std::move(out)));
    X = flat.attr("reshape")(nb::make_tuple(n, m.n_cols));
  } else {
    nb::object indptr;
    if (hi - lo <= std::numeric_limits<int32_t>::max()) {
      std::vector<int32_t> p(static_cast<size_t>(n + 1));
      for (int64_t r = 0; r <= n; ++r) p[r] = static_cast<int32_t>(m.indptr[b.row_begin + r] - lo);
      indptr = nb::cast(ToNumpy(std::move(p)));
    } else {
      std::vector<int64_t> p(static_cast<size_t>(n + 1));
      for (int64_t r = 0; r <= n; ++r) p[r] = m.indptr[b.row_begin + r] - lo;
      indptr = nb::cast(ToNumpy(std::move(p)));
    }
    X = nb::make_tuple(View(m.data.data() + lo, static_cast<size_t>(hi - lo), b.fetch),
                       View(m.indices.data() + lo, static_cast<size_t>(hi - lo), b.fetch), indptr,
                       nb::make_tuple(n, m.n_cols));
  }
  nb::object rows = nb::cast(View(b.fetch_rows->data() + b.row_begin, static_cast<size_t>(n),
                                  b.fetch_rows));
  nb::dict obs;
  for (const Column& c : *b.fetch_obs) obs[c.info.name.c_str()] = ColumnSlice(c, b.row_begin, b.row_end, b.fetch_obs);
  nb::object sources = nb::none();
  if (b.fetch_sources) {
    sources = nb::cast(View(b.fetch_sources->data() + b.row_begin, static_cast<size_t>(n), b.fetch_sources));
  }
  return nb::make_tuple(b.index, X, rows, obs, sources, InputsToPython(b));
}

}  // namespace

void BindLoader(nb::module_& m) {
  // An interrupted pass of an elastic resume: (world_size, batch_size, fetch_factor,
  // consumed-batch marks per rank), built by cellfeed.loader from a state_dict.
  nb::class_<InterruptedPass>(m, "InterruptedPass")
      .def("__init__",
           [](InterruptedPass* p, int world_size, int64_t batch_size, int64_t fetch_factor,
              std::vector<std::vector<int64_t>> next) {
             new (p) InterruptedPass{world_size, batch_size, fetch_factor, std::move(next)};
           },
           nb::arg("world_size"), nb::arg("batch_size"), nb::arg("fetch_factor"), nb::arg("next"));
  nb::class_<Loader>(m, "Loader")
      .def_static(
          "make",
          [](std::shared_ptr<Collection> collection, int64_t batch_size, int64_t block_size,
             int64_t fetch_factor, bool shuffle, uint64_t seed, bool drop_last, int rank,
             int world_size, const std::string& remainder, std::vector<std::string> obs_columns,
             int prefetch, int worker_id, int num_workers, bool chunk_blocks,
             std::shared_ptr<Corpus> corpus, const std::string& split,
             std::shared_ptr<transform::Pipeline> inputs) {
            LoaderOptions o;
            o.sampling.batch_size = batch_size;
            o.sampling.block_size = block_size;
            o.sampling.chunk_blocks = chunk_blocks;
            o.sampling.fetch_factor = fetch_factor;
            o.sampling.shuffle = shuffle;
            o.sampling.seed = seed;
            o.sampling.drop_last = drop_last;
            if (remainder == "pad") {
              o.sampling.remainder = RemainderPolicy::kPad;
            } else if (remainder == "drop") {
              o.sampling.remainder = RemainderPolicy::kDrop;
            } else {
              ThrowIfError(Status::Invalid("remainder must be 'pad' or 'drop', got '" + remainder + "'"));
            }
            o.rank = rank;
            o.world_size = world_size;
            o.obs_columns = std::move(obs_columns);
            o.prefetch = prefetch;
            o.worker_id = worker_id;
            o.num_workers = num_workers;
            o.corpus = std::move(corpus);
            o.split = split;
            o.transform = std::move(inputs);
            return ValueOrThrow(Loader::Make(std::move(collection), o));
          },
          nb::arg("collection"), nb::arg("batch_size"), nb::arg("block_size"),
          nb::arg("fetch_factor"), nb::arg("shuffle"), nb::arg("seed"), nb::arg("drop_last"),
          nb::arg("rank"), nb::arg("world_size"), nb::arg("remainder"), nb::arg("obs_columns"),
          nb::arg("prefetch"), nb::arg("worker_id"), nb::arg("num_workers"),
          nb::arg("chunk_blocks") = false, nb::arg("corpus").none() = nb::none(),
          nb::arg("split") = "train", nb::arg("inputs") = nb::none())
      .def_prop_ro("num_batches", &Loader::num_batches)
      .def("source_cells_of_rank", &Loader::SourceCellsOfRank, nb::arg("epoch"))
      .def("batch_source_counts",
           [](const Loader& l, int64_t epoch, int64_t max_batches) {
             std::vector<int64_t> v;
             {
               nb::gil_scoped_release release;
               v = l.BatchSourceCounts(epoch, max_batches);
             }
             return ToNumpy(std::move(v));
           },
           nb::arg("epoch"), nb::arg("max_batches"))
      .def("start",
           [](Loader& l, int64_t epoch, int64_t start_batch, const std::vector<InterruptedPass>& earlier) {
             Status st;
             {
               nb::gil_scoped_release release;
               st = l.Start(epoch, start_batch, earlier);
             }
             ThrowIfError(st);
           },
           nb::arg("epoch"), nb::arg("start_batch") = 0, nb::arg("earlier") = std::vector<InterruptedPass>{})
      .def("pass_batches",
           [](const Loader& l, int64_t epoch, const std::vector<InterruptedPass>& earlier) {
             Result<int64_t> r = Status::OK();
             {
               nb::gil_scoped_release release;
               r = l.PassBatches(epoch, earlier);
             }
             return ValueOrThrow(std::move(r));
           },
           nb::arg("epoch"), nb::arg("earlier"))
      .def("next",
           [](Loader& l, const std::string& output) -> nb::object {
             for (;;) {
               Result<std::optional<Batch>> r = Status::OK();
               {
                 nb::gil_scoped_release release;
                 r = l.Next(std::chrono::milliseconds(100));
               }
               if (!r.ok() && r.status().code() == StatusCode::kCancelled &&
                   r.status().message() == "timeout") {
                 if (PyErr_CheckSignals() != 0) {
                   l.Stop();
                   throw nb::python_error();
                 }
                 continue;
               }
               std::optional<Batch> b = ValueOrThrow(std::move(r));
               if (!b) return nb::none();
               const bool dense = output == "numpy" || output == "torch-dense";
               return BatchToPython(*b, dense);
             }
           },
           nb::arg("output") = "scipy")
      .def("stop", [](Loader& l) {
        nb::gil_scoped_release release;
        l.Stop();
      });
}

}  // namespace cellfeed::python
