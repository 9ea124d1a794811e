// Bindings of cellfeed::SetIndex (include/cellfeed/perturb.h): per-cell codes in as numpy
// arrays, the declaration as a dict; planning runs with the GIL released and each batch's
// plan comes back as numpy arrays without copies.
#include <nanobind/stl/array.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <optional>

#include "cellfeed/perturb.h"
#include "convert.h"

namespace cellfeed::python {

namespace {

template <typename T>
using Codes = nb::ndarray<const T, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

template <typename T>
std::span<const T> Span(const Codes<T>& a) {
  return {a.data(), a.shape(0)};
}

template <typename T>
T Get(const nb::dict& d, const char* key, T fallback) {
  if (!d.contains(key) || d[key].is_none()) return fallback;
  return nb::cast<T>(d[key]);
}

PerturbSpec SpecFromDict(const nb::dict& d) {
  PerturbSpec s;
  s.set_size = Get<int64_t>(d, "set_size", s.set_size);
  s.sets_per_batch = Get<int64_t>(d, "sets_per_batch", s.sets_per_batch);
  s.min_cells = Get<int64_t>(d, "min_cells", s.min_cells);
  s.sets_per_group = Get<int64_t>(d, "sets_per_group", 0);
  s.group_by_batch = Get<bool>(d, "group_by_batch", false);
  s.control_sets = Get<bool>(d, "control_sets", true);
  s.match_levels = Get<std::vector<std::vector<int32_t>>>(d, "match_levels", {{}});
  s.controls_fixed = Get<bool>(d, "controls_fixed", false);
  s.skip_uncontrolled = Get<bool>(d, "skip_uncontrolled", false);
  const std::string held = Get<std::string>(d, "held_out_controls", "with_context");
  if (held == "with_context")
    s.held_out_controls = HeldOutControls::kWithContext;
  else if (held == "shared")
    s.held_out_controls = HeldOutControls::kShared;
  else
    ThrowIfError(Status::Invalid("held_out_controls must be 'with_context' or 'shared', got '" +
                                 held + "'"));
  s.controls_from_lower_splits = Get<bool>(d, "controls_from_lower_splits", false);
  s.context_split = Get<std::vector<int8_t>>(d, "context_split", {});
  s.condition_split = Get<std::vector<int8_t>>(d, "condition_split", {});
  s.pair_split = Get<std::vector<std::array<int32_t, 3>>>(d, "pair_split", {});
  s.drop_last = Get<bool>(d, "drop_last", false);
  s.seed = Get<uint64_t>(d, "seed", 0);
  s.context_names = Get<std::vector<std::string>>(d, "context_names", {});
  s.condition_names = Get<std::vector<std::string>>(d, "condition_names", {});
  s.match_names = Get<std::vector<std::string>>(d, "match_names", {});
  return s;
}

// The index, kept alive by every plan made from it.
struct PySetIndex {
  std::shared_ptr<const SetIndex> index;
};

}  // namespace

void BindPerturb(nb::module_& m) {
  nb::class_<SetEpochPlan>(m, "SetEpochPlan")
      .def_prop_ro("num_batches", &SetEpochPlan::num_batches)
      .def_prop_ro("num_sets", &SetEpochPlan::num_sets)
      .def(
          "get_batch",
          [](const SetEpochPlan& p, int64_t b) {
            if (b < 0 || b >= p.num_batches())
              ThrowIfError(Status::OutOfRange("batch " + std::to_string(b) + " of " +
                                              std::to_string(p.num_batches())));
            SetBatchPlan out;
            {
              nb::gil_scoped_release release;
              out = p.GetBatch(b);
            }
            return nb::make_tuple(
                out.n_sets, ToNumpy(std::move(out.groups)), ToNumpy(std::move(out.sets)),
                ToNumpy(std::move(out.pert_rows)), ToNumpy(std::move(out.pert_repeat)),
                ToNumpy(std::move(out.ctrl_rows)), ToNumpy(std::move(out.ctrl_repeat)),
                ToNumpy(std::move(out.ctrl_level)));
          },
          nb::arg("batch"))
      .def("sets_per_level", [](const SetEpochPlan& p) {
        nb::gil_scoped_release release;
        return p.SetsPerLevel();
      });

  nb::class_<PySetIndex>(m, "SetIndex")
      .def_static(
          "make",
          [](const Codes<int64_t>& rows, const Codes<int32_t>& context,
             const Codes<int32_t>& condition, const Codes<uint8_t>& control,
             std::optional<Codes<int32_t>> batch, std::optional<Codes<int8_t>> split,
             std::vector<Codes<int32_t>> match, nb::dict spec) {
            PerturbCells cells;
            cells.rows = Span(rows);
            cells.context = Span(context);
            cells.condition = Span(condition);
            cells.control = Span(control);
            if (batch) cells.batch = Span(*batch);
            if (split) cells.split = Span(*split);
            for (const auto& a : match) cells.match.push_back(Span(a));
            PerturbSpec s = SpecFromDict(spec);
            Result<std::shared_ptr<const SetIndex>> r = Status::OK();
            {
              nb::gil_scoped_release release;
              r = SetIndex::Make(cells, std::move(s));
            }
            return PySetIndex{ValueOrThrow(std::move(r))};
          },
          nb::arg("rows"), nb::arg("context"), nb::arg("condition"), nb::arg("control"),
          nb::arg("batch").none(), nb::arg("split").none(), nb::arg("match"), nb::arg("spec"))
      .def("groups",
           [](const PySetIndex& p) {
             const auto& gs = p.index->groups();
             std::vector<int8_t> split, control;
             std::vector<int32_t> context, condition, batch;
             std::vector<int64_t> size, sets;
             for (size_t g = 0; g < gs.size(); ++g) {
               split.push_back(gs[g].split);
               control.push_back(gs[g].control ? 1 : 0);
               context.push_back(gs[g].context);
               condition.push_back(gs[g].condition);
               batch.push_back(gs[g].batch);
               size.push_back(gs[g].size());
               sets.push_back(p.index->SetsOfGroup(static_cast<int32_t>(g)));
             }
             nb::dict d;
             d["split"] = ToNumpy(std::move(split));
             d["control"] = ToNumpy(std::move(control));
             d["context"] = ToNumpy(std::move(context));
             d["condition"] = ToNumpy(std::move(condition));
             d["batch"] = ToNumpy(std::move(batch));
             d["cells"] = ToNumpy(std::move(size));
             d["sets"] = ToNumpy(std::move(sets));
             return d;
           })
      .def("counts",
           [](const PySetIndex& p) {
             const SetIndex::Counts& c = p.index->counts();
             nb::dict d;
             d["small_groups"] = c.small_groups;
             d["small_group_cells"] = c.small_group_cells;
             d["uncontrolled_cells"] = c.uncontrolled_cells;
             d["cells_per_level"] = c.cells_per_level;
             d["uncontrolled_per_context"] = c.uncontrolled_per_context;
             return d;
           })
      .def("cell_splits",
           [](const PySetIndex& p) {
             std::vector<int8_t> v = p.index->cell_splits();
             return ToNumpy(std::move(v));
           })
      .def_prop_ro("num_pools", [](const PySetIndex& p) { return p.index->pools().size(); })
      .def_prop_ro("num_grouped_cells",
                   [](const PySetIndex& p) { return p.index->group_rows().size(); })
      .def(
          "plan",
          [](const PySetIndex& p, int split, int64_t epoch, int rank, int world_size) {
            Result<SetEpochPlan> r = Status::OK();
            {
              nb::gil_scoped_release release;
              r = p.index->Plan(split, epoch, rank, world_size);
            }
            return ValueOrThrow(std::move(r));
          },
          nb::arg("split"), nb::arg("epoch"), nb::arg("rank"), nb::arg("world_size"));
}

}  // namespace cellfeed::python
