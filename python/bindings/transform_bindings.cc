// Bindings of cellfeed::transform: gene maps, pipelines (built from plain dicts that
// python/cellfeed/inputs.py writes), and the zero-copy views of a batch's model inputs.
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cmath>

#include "cellfeed/collection.h"
#include "cellfeed/loader.h"
#include "cellfeed/transform.h"
#include "convert.h"

namespace cellfeed::python {

namespace tf = cellfeed::transform;

namespace {

// A numpy array over rows [begin, end) of `t`, keeping `keep` alive.
nb::object TensorRows(const tf::Tensor& t, int64_t begin, int64_t end,
                      std::shared_ptr<const void> keep) {
  auto* holder = new std::shared_ptr<const void>(std::move(keep));
  nb::capsule owner(holder, [](void* p) noexcept {
    delete static_cast<std::shared_ptr<const void>*>(p);
  });
  std::vector<size_t> shape(t.shape.begin(), t.shape.end());
  shape[0] = static_cast<size_t>(end - begin);
  void* ptr = const_cast<uint8_t*>(t.data.data()) + begin * t.row_bytes();
  nb::dlpack::dtype dt;
  switch (t.type) {
    case tf::TensorType::kFloat32: dt = nb::dtype<float>(); break;
    case tf::TensorType::kBFloat16: dt = nb::dtype<uint16_t>(); break;  // viewed as bfloat16 in Python
    case tf::TensorType::kInt64: dt = nb::dtype<int64_t>(); break;
    case tf::TensorType::kBool: dt = nb::dtype<bool>(); break;
  }
  return nb::cast(nb::ndarray<nb::numpy>(ptr, shape.size(), shape.data(), owner, nullptr, dt));
}

nb::dict OutputsRows(const std::shared_ptr<const tf::Outputs>& out, int64_t begin, int64_t end) {
  nb::dict d;
  for (const tf::Tensor& t : out->tensors) d[t.name.c_str()] = TensorRows(t, begin, end, out);
  return d;
}

double Num(const nb::dict& d, const char* key, double dflt) {
  return d.contains(key) ? nb::cast<double>(d[key]) : dflt;
}
bool Flag(const nb::dict& d, const char* key, bool dflt) {
  return d.contains(key) ? nb::cast<bool>(d[key]) : dflt;
}
std::string Str(const nb::dict& d, const char* key, const std::string& dflt) {
  return d.contains(key) ? nb::cast<std::string>(d[key]) : dflt;
}

tf::Step StepFromDict(const nb::dict& d) {
  const std::string kind = Str(d, "kind", "");
  if (kind == "thin") return tf::Thin{Num(d, "fraction", 1.0), Num(d, "target_total", 0)};
  if (kind == "rda") {
    return tf::RdaDownsample{Num(d, "probability", 0.5), static_cast<int>(Num(d, "beta_a", 2)),
                             static_cast<int>(Num(d, "beta_b", 2))};
  }
  if (kind == "normalize_total") return tf::NormalizeTotal{Num(d, "target", 1e4)};
  if (kind == "log1p") return tf::Log1p{};
  if (kind == "clip") {
    return tf::Clip{Num(d, "min", -INFINITY), Num(d, "max", INFINITY)};
  }
  ThrowIfError(Status::Invalid("unknown transform step '" + kind + "'"));
  return tf::Log1p{};
}

tf::Output OutputFromDict(const nb::dict& d) {
  const std::string kind = Str(d, "kind", "");
  if (kind == "dense") {
    tf::DenseOutput o;
    const std::string depth = Str(d, "depth_tokens", "none");
    if (depth == "none") o.depth = tf::DepthTokens::kNone;
    else if (depth == "scfoundation") o.depth = tf::DepthTokens::kScFoundation;
    else if (depth == "aido") o.depth = tf::DepthTokens::kAidoCell;
    else ThrowIfError(Status::Invalid("depth_tokens must be 'none', 'scfoundation' or 'aido', got '" + depth + "'"));
    const std::string t = Str(d, "t_mode", "constant");
    if (t == "constant") o.t_mode = tf::TMode::kConstant;
    else if (t == "raw_total") o.t_mode = tf::TMode::kRawTotal;
    else if (t == "s_plus") o.t_mode = tf::TMode::kSPlus;
    else ThrowIfError(Status::Invalid("t_mode must be 'constant', 'raw_total' or 's_plus', got '" + t + "'"));
    o.t_value = Num(d, "t_value", 4.0);
    const std::string dtype = Str(d, "dtype", "float32");
    if (dtype == "float32") o.dtype = tf::ValueType::kFloat32;
    else if (dtype == "bfloat16") o.dtype = tf::ValueType::kBFloat16;
    else ThrowIfError(Status::Invalid("dtype must be 'float32' or 'bfloat16', got '" + dtype + "'"));
    o.mask = Flag(d, "mask", false);
    o.value_mask.nonzero = Num(d, "mask_nonzero", 0.30);
    o.value_mask.zero = Num(d, "mask_zero", 0.03);
    o.value_mask.value = static_cast<float>(Num(d, "mask_value", -1.0));
    return o;
  }
  if (kind == "rank") {
    tf::RankOutput o;
    o.version = static_cast<int>(Num(d, "version", 2));
    o.max_tokens = static_cast<int64_t>(Num(d, "max_tokens", 0));
    o.medians = nb::cast<std::vector<double>>(d["medians"]);
    o.n_counts_all_genes = Str(d, "n_counts", "all") == "all";
    o.pad_id = static_cast<int32_t>(Num(d, "pad_id", 0));
    o.mask_id = static_cast<int32_t>(Num(d, "mask_id", 1));
    o.cls_id = static_cast<int32_t>(Num(d, "cls_id", 2));
    o.eos_id = static_cast<int32_t>(Num(d, "eos_id", 3));
    o.first_gene_id = static_cast<int32_t>(Num(d, "first_gene_id", 4));
    o.mlm = Flag(d, "mlm", true);
    o.mlm_probability = Num(d, "mlm_probability", 0.15);
    o.mask_fraction = Num(d, "mask_fraction", 0.8);
    o.random_fraction = Num(d, "random_fraction", 0.1);
    o.pad_to_batch = Flag(d, "pad_to_batch", false);
    return o;
  }
  if (kind == "binned") {
    tf::BinnedOutput o;
    o.n_bins = static_cast<int>(Num(d, "n_bins", 51));
    o.max_length = static_cast<int64_t>(Num(d, "max_length", 1200));
    o.sample = Flag(d, "sample", true);
    o.include_zeros = Flag(d, "include_zeros", false);
    o.cls_id = static_cast<int32_t>(Num(d, "cls_id", -1));
    o.pad_id = static_cast<int32_t>(Num(d, "pad_id", -1));
    o.pad_value = static_cast<float>(Num(d, "pad_value", -2.0));
    o.mask_value = static_cast<float>(Num(d, "mask_value", -1.0));
    o.cls_value = static_cast<float>(Num(d, "cls_value", 0.0));
    o.mask_ratio = Num(d, "mask_ratio", 0.4);
    o.pad_to_batch = Flag(d, "pad_to_batch", false);
    return o;
  }
  ThrowIfError(Status::Invalid("unknown output kind '" + kind + "'"));
  return tf::DenseOutput{};
}

nb::list Reports(const tf::GeneMap& m) {
  nb::list out;
  for (const auto& r : m.reports) {
    nb::dict d;
    d["file"] = r.file;
    d["file_genes"] = r.file_genes;
    d["mapped"] = r.mapped;
    d["translated"] = r.translated;
    d["summed"] = r.summed;
    d["vocab_missing"] = r.vocab_missing;
    d["unmapped_examples"] = r.unmapped_examples;
    out.append(d);
  }
  return out;
}

}  // namespace

nb::object InputsToPython(const Batch& b) {
  if (!b.inputs) return nb::none();
  return OutputsRows(b.inputs, 0, b.size());
}

void BindTransform(nb::module_& m) {
  nb::class_<tf::GeneMap>(m, "GeneMap")
      .def_prop_ro("vocab_size", [](const tf::GeneMap& g) { return g.vocab_size; })
      .def_prop_ro("reports", &Reports)
      .def("present",
           [](const tf::GeneMap& g, size_t f) {
             if (f >= g.map_of_file.size()) ThrowIfError(Status::OutOfRange("no such file"));
             return ToNumpy(std::vector<uint8_t>(g.Present(f)));
           })
      .def("column_to_vocab", [](const tf::GeneMap& g, size_t f) {
        if (f >= g.map_of_file.size()) ThrowIfError(Status::OutOfRange("no such file"));
        return ToNumpy(std::vector<int32_t>(g.ColumnToVocab(f)));
      });

  m.def(
      "map_genes",
      [](std::shared_ptr<Collection> c, std::vector<std::string> genes, const std::string& key,
         std::string var_column, std::vector<std::pair<std::string, std::string>> id_symbol) {
        tf::VocabSpec spec;
        spec.genes = std::move(genes);
        if (key == "symbol") spec.key = tf::GeneKey::kSymbol;
        else if (key == "ensembl") spec.key = tf::GeneKey::kEnsembl;
        else ThrowIfError(Status::Invalid("by must be 'symbol' or 'ensembl', got '" + key + "'"));
        spec.var_column = std::move(var_column);
        spec.id_symbol = std::move(id_symbol);
        Result<tf::GeneMap> r = Status::OK();
        {
          nb::gil_scoped_release release;
          r = tf::MapGenes(*c, spec);
        }
        return std::make_shared<tf::GeneMap>(ValueOrThrow(std::move(r)));
      },
      nb::arg("collection"), nb::arg("genes"), nb::arg("by"), nb::arg("var_column"),
      nb::arg("id_symbol"));

  nb::class_<tf::Pipeline>(m, "Pipeline")
      .def_static(
          "make",
          [](std::shared_ptr<tf::GeneMap> map, nb::list steps, nb::dict output) {
            tf::PipelineSpec spec;
            for (nb::handle s : steps) spec.steps.push_back(StepFromDict(nb::cast<nb::dict>(s)));
            spec.output = OutputFromDict(output);
            auto p = ValueOrThrow(tf::Pipeline::Make(*map, std::move(spec)));
            return std::const_pointer_cast<tf::Pipeline>(p);
          },
          nb::arg("gene_map"), nb::arg("steps"), nb::arg("output"))
      .def(
          "run",
          // One call of the pipeline on a CSR matrix in the collection's gene space: for
          // tests and for users who read rows themselves.
          [](const tf::Pipeline& p, nb::ndarray<const float, nb::ndim<1>, nb::c_contig> data,
             nb::ndarray<const int32_t, nb::ndim<1>, nb::c_contig> indices, RowArray indptr,
             int64_t n_cols, RowArray rows, uint64_t seed, int64_t epoch) {
            CsrMatrix X;
            X.n_rows = static_cast<int64_t>(rows.shape(0));
            X.n_cols = n_cols;
            if (indptr.shape(0) != rows.shape(0) + 1 || indices.shape(0) != data.shape(0) ||
                indptr.data()[indptr.shape(0) - 1] != static_cast<int64_t>(data.shape(0)))
              ThrowIfError(Status::Invalid("run: indptr needs len(rows) + 1 entries ending at len(data)"));
            X.indptr.assign(indptr.data(), indptr.data() + indptr.shape(0));
            X.indices.assign(indices.data(), indices.data() + indices.shape(0));
            X.data.assign(data.data(), data.data() + data.shape(0));
            for (int32_t c : X.indices)
              if (c < 0 || c >= n_cols) ThrowIfError(Status::Invalid("run: column index out of range"));
            std::vector<int64_t> r(rows.data(), rows.data() + rows.shape(0));
            for (int64_t row : r)
              if (row < 0 || row >= p.gene_map().file_offsets.back())
                ThrowIfError(Status::OutOfRange("run: row id outside the collection"));
            std::vector<uint64_t> keys(r.begin(), r.end());
            auto out = std::make_shared<tf::Outputs>();
            Status st;
            {
              nb::gil_scoped_release release;
              st = p.Run(X, tf::FetchCells{r, keys, seed, epoch}, *out);
            }
            ThrowIfError(st);
            return OutputsRows(out, 0, X.n_rows);
          },
          nb::arg("data"), nb::arg("indices"), nb::arg("indptr"), nb::arg("n_cols"),
          nb::arg("rows"), nb::arg("seed"), nb::arg("epoch"));
}

}  // namespace cellfeed::python
