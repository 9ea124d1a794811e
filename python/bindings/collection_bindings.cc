// Bindings of cellfeed::Collection. C++ work runs with the GIL released; results are
// handed to numpy without copies.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "cellfeed/collection.h"
#include "convert.h"

namespace cellfeed::python {

namespace {

std::span<const int64_t> Rows(const RowArray& rows) {
  return {rows.data(), rows.shape(0)};
}

nb::object ValuesArray(DType t, std::vector<uint8_t>&& bytes) {
  nb::object u8 = nb::cast(ToNumpy(std::move(bytes)));
  return u8.attr("view")(DTypeName(t));
}

nb::dict ColumnToDict(Column&& c) {
  nb::dict d;
  d["name"] = c.info.name;
  d["kind"] = ColumnKindName(c.info.kind);
  d["dtype"] = DTypeName(c.info.dtype);
  d["length"] = c.length;
  if (!c.values.empty() || c.info.kind == ColumnKind::kNumeric ||
      c.info.kind == ColumnKind::kBool || c.info.kind == ColumnKind::kCategorical ||
      c.info.kind == ColumnKind::kNullableInt || c.info.kind == ColumnKind::kNullableBool) {
    d["values"] = ValuesArray(c.info.dtype, std::move(c.values));
  }
  if (c.info.kind == ColumnKind::kString || c.info.kind == ColumnKind::kNullableString) {
    d["strings"] = nb::cast(std::move(c.strings));
  }
  if (!c.mask.empty() || c.info.kind == ColumnKind::kNullableInt ||
      c.info.kind == ColumnKind::kNullableBool || c.info.kind == ColumnKind::kNullableString) {
    d["mask"] = ValuesArray(DType::kBool, std::move(c.mask));
  }
  if (c.categories) {
    Column cats = *c.categories;
    d["categories"] = ColumnToDict(std::move(cats));
    d["ordered"] = c.ordered;
  }
  return d;
}

nb::list ColumnInfos(const std::vector<ColumnInfo>& cols) {
  nb::list out;
  for (const auto& c : cols) out.append(nb::make_tuple(c.name, ColumnKindName(c.kind), DTypeName(c.dtype)));
  return out;
}

nb::dict SummaryToDict(const FileSummary& s) {
  nb::dict d;
  d["path"] = s.path;
  d["n_obs"] = s.n_obs;
  d["n_vars"] = s.n_vars;
  d["nnz"] = s.nnz;
  d["element"] = s.matrix_element;
  d["encoding"] = s.encoding;
  nb::list arrays;
  for (const auto& a : s.arrays) {
    nb::dict x;
    x["name"] = a.name;
    x["dtype"] = a.dtype;
    x["shape"] = a.shape;
    x["storage"] = a.storage;
    x["chunk_shape"] = a.chunk_shape;
    x["num_chunks"] = a.num_chunks;
    x["rows_per_chunk"] = a.rows_per_chunk;
    x["filters"] = a.filters;
    arrays.append(x);
  }
  d["arrays"] = arrays;
  d["obs_columns"] = ColumnInfos(s.obs_columns);
  d["var_columns"] = ColumnInfos(s.var_columns);
  return d;
}

}  // namespace

void BindCollection(nb::module_& m) {
  nb::class_<Collection>(m, "Collection")
      .def_static(
          "open",
          [](const std::vector<std::string>& paths, const std::string& layer, int threads,
             const std::string& join, const std::vector<std::string>& genes,
             const std::string& values, bool verify_whole_chunks,
             const std::vector<std::string>& file_layers, std::optional<bool> isolate,
             std::optional<double> open_timeout, std::optional<int64_t> probe_memory_mb) {
            OpenOptions o;
            o.file_layers = file_layers;
            o.isolate = isolate;
            o.open_timeout_s = open_timeout;
            o.probe_memory_mb = probe_memory_mb;
            o.values = values;
            o.verify_whole_chunks = verify_whole_chunks;
            o.layer = layer;
            o.threads = threads;
            o.join = join;
            o.genes = genes;
            Result<std::shared_ptr<Collection>> r = Status::OK();
            {
              nb::gil_scoped_release release;
              r = Collection::Open(paths, o);
            }
            return ValueOrThrow(std::move(r));
          },
          nb::arg("paths"), nb::arg("layer") = "", nb::arg("threads") = 0,
          nb::arg("join") = "inner", nb::arg("genes") = std::vector<std::string>{},
          nb::arg("values") = "finite", nb::arg("verify_whole_chunks") = false,
          nb::arg("file_layers") = std::vector<std::string>{},
          nb::arg("isolate").none() = nb::none(), nb::arg("open_timeout").none() = nb::none(),
          nb::arg("probe_memory_mb").none() = nb::none())
      .def_prop_ro("n_obs", &Collection::n_obs)
      .def_prop_ro("n_vars", &Collection::n_vars)
      .def_prop_ro("files", &Collection::files)
      .def_prop_ro("file_offsets", &Collection::file_offsets)
      .def_prop_ro("var_names", &Collection::var_names)
      .def_prop_ro("threads", &Collection::threads)
      .def_prop_ro("obs_columns", [](const Collection& c) { return ColumnInfos(c.obs_columns()); })
      .def_prop_ro("var_columns", [](const Collection& c) { return ColumnInfos(c.var_columns()); })
      .def("summaries",
           [](const Collection& c) {
             nb::list out;
             for (const auto& s : c.summaries()) out.append(SummaryToDict(s));
             return out;
           })
      .def("read",
           [](const Collection& c, const RowArray& rows) {
             Result<CsrMatrix> r = Status::OK();
             {
               nb::gil_scoped_release release;
               r = c.Read(Rows(rows));
             }
             CsrMatrix m = ValueOrThrow(std::move(r));
             return nb::make_tuple(ToNumpy(std::move(m.data)), ToNumpy(std::move(m.indices)),
                                   ToNumpy(std::move(m.indptr)), nb::make_tuple(m.n_rows, m.n_cols));
           },
           nb::arg("rows"))
      .def_prop_ro("obsm_keys",
                   [](const Collection& c) {
                     nb::list out;
                     for (const ObsmInfo& k : c.ObsmKeys()) {
                       nb::dict d;
                       d["key"] = k.key;
                       d["n_cols"] = k.n_cols;
                       d["dtype"] = k.dtype;
                       d["encoding"] = k.encoding;
                       out.append(d);
                     }
                     return out;
                   })
      .def("read_obsm",
           [](const Collection& c, const std::string& key, const RowArray& rows) {
             Result<ObsmMatrix> r = Status::OK();
             {
               nb::gil_scoped_release release;
               r = c.ReadObsm(key, Rows(rows));
             }
             ObsmMatrix m = ValueOrThrow(std::move(r));
             if (auto* d = std::get_if<DenseMatrix>(&m)) {
               return nb::make_tuple("dense", ToNumpy(std::move(d->values)),
                                     nb::make_tuple(d->n_rows, d->n_cols));
             }
             CsrMatrix& s = std::get<CsrMatrix>(m);
             return nb::make_tuple("csr", ToNumpy(std::move(s.data)),
                                   ToNumpy(std::move(s.indices)), ToNumpy(std::move(s.indptr)),
                                   nb::make_tuple(s.n_rows, s.n_cols));
           },
           nb::arg("key"), nb::arg("rows"))
      .def("obs_column",
           [](const Collection& c, const std::string& name, std::optional<RowArray> rows) {
             Result<Column> r = Status::OK();
             {
               nb::gil_scoped_release release;
               r = rows ? c.Obs(name, Rows(*rows)) : c.Obs(name);
             }
             return ColumnToDict(ValueOrThrow(std::move(r)));
           },
           nb::arg("name"), nb::arg("rows").none() = nb::none())
      .def("obs_names",
           [](const Collection& c, std::optional<RowArray> rows) {
             Result<std::vector<std::string>> r = Status::OK();
             {
               nb::gil_scoped_release release;
               r = rows ? c.ObsNames(Rows(*rows)) : c.ObsNames();
             }
             return ValueOrThrow(std::move(r));
           },
           nb::arg("rows").none() = nb::none())
      .def("var_column",
           [](const Collection& c, const std::string& name) {
             Result<Column> r = Status::OK();
             {
               nb::gil_scoped_release release;
               r = c.Var(name);
             }
             return ColumnToDict(ValueOrThrow(std::move(r)));
           },
           nb::arg("name"));
}

}  // namespace cellfeed::python
