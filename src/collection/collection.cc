#include "cellfeed/collection.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <unordered_map>

#include "collection/collection_impl.h"
#include "collection/gene_join.h"
#include "h5ad/column_reader.h"
#include "source/anndata_source.h"
#include "io/hdf5/probe_verdicts.h"
#include "source/open_probe.h"
#include "io/array_reader.h"

namespace cellfeed {

std::string ColumnKindName(ColumnKind k) {
  switch (k) {
    case ColumnKind::kNumeric: return "numeric";
    case ColumnKind::kBool: return "bool";
    case ColumnKind::kString: return "string";
    case ColumnKind::kCategorical: return "categorical";
    case ColumnKind::kNullableInt: return "nullable-integer";
    case ColumnKind::kNullableBool: return "nullable-boolean";
    case ColumnKind::kNullableString: return "nullable-string";
  }
  return "?";
}

size_t Collection::Impl::FileOf(int64_t row) const {
  auto it = std::upper_bound(offsets.begin(), offsets.end(), row);
  return static_cast<size_t>(it - offsets.begin()) - 1;
}

Status Collection::Impl::CheckRows(std::span<const int64_t> rows) const {
  for (int64_t r : rows) {
    if (r < 0 || r >= n_obs()) {
      return Status::OutOfRange("row " + std::to_string(r) + " is outside the collection of " +
                                std::to_string(n_obs()) + " rows");
    }
  }
  return Status::OK();
}

RowsByFile GroupRowsByFile(const Collection::Impl& impl, std::span<const int64_t> rows) {
  RowsByFile g;
  g.local.resize(impl.files.size());
  g.positions.resize(impl.files.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    size_t f = impl.FileOf(rows[i]);
    g.local[f].push_back(rows[i] - impl.offsets[f]);
    g.positions[f].push_back(static_cast<int64_t>(i));
  }
  return g;
}

namespace {

// Columns present in every file with the same kind, in the first file's order.
std::vector<ColumnInfo> CommonColumns(const Collection::Impl& impl) {
  std::vector<ColumnInfo> out;
  for (const auto& c : impl.files[0]->obs().columns) {
    bool everywhere = true;
    for (const auto& f : impl.files) {
      const anndata::ColumnLayout* o = f->obs().Find(c.info.name);
      everywhere = everywhere && o && o->info.kind == c.info.kind;
    }
    if (everywhere) out.push_back(c.info);
  }
  return out;
}

// Result dtype when files store one column with different dtypes.
DType CommonDType(const std::vector<DType>& types) {
  bool same = std::all_of(types.begin(), types.end(), [&](DType t) { return t == types[0]; });
  if (same) return types[0];
  bool ints = std::all_of(types.begin(), types.end(), DTypeIsInteger);
  return ints ? DType::kInt64 : DType::kFloat64;
}

std::vector<std::string> CategoryLabels(const Column& cats) {
  if (cats.info.kind == ColumnKind::kString) return cats.strings;
  std::vector<double> v(static_cast<size_t>(cats.length));
  ConvertElements(cats.info.dtype, cats.values.data(), DType::kFloat64, v.data(), v.size());
  std::vector<std::string> s;
  for (double x : v) s.push_back(std::to_string(x));
  return s;
}

// Numeric categories of every file merged by value (not by a printed label, which
// would turn them into strings and round floats to 6 digits): file 0's when all files
// hold the same values, else their union in first-seen order, in the files' common
// dtype. Fills remap[f][code] = union code when they differ; null when not all numeric.
std::shared_ptr<const Column> MergeNumericCategories(
    const std::vector<const anndata::ColumnLayout*>& layouts,
    std::vector<std::vector<int32_t>>& remap) {
  std::vector<DType> types;
  for (const auto* l : layouts) {
    if (l->categories->info.kind == ColumnKind::kString) return nullptr;
    types.push_back(l->categories->info.dtype);
  }
  const DType t = CommonDType(types);
  const size_t esize = DTypeSize(t);
  std::vector<std::vector<uint8_t>> values(layouts.size());
  for (size_t f = 0; f < layouts.size(); ++f) {
    const Column& c = *layouts[f]->categories;
    values[f].resize(static_cast<size_t>(c.length) * esize);
    ConvertElements(c.info.dtype, c.values.data(), t, values[f].data(),
                    static_cast<size_t>(c.length));
  }
  bool same = true;
  for (size_t f = 1; f < layouts.size(); ++f) same = same && values[f] == values[0];
  if (same && std::all_of(types.begin(), types.end(), [&](DType d) { return d == types[0]; })) {
    return layouts[0]->categories;
  }
  auto u = std::make_shared<Column>();
  u->info = layouts[0]->categories->info;
  u->info.dtype = t;
  u->info.kind = t == DType::kBool ? ColumnKind::kBool : ColumnKind::kNumeric;
  int64_t n = 0;
  for (size_t f = 0; f < layouts.size(); ++f) {
    const size_t count = values[f].size() / esize;
    for (size_t i = 0; i < count; ++i) {
      const uint8_t* v = values[f].data() + i * esize;
      int64_t pos = 0;
      while (pos < n && std::memcmp(u->values.data() + pos * esize, v, esize) != 0) ++pos;
      if (pos == n) {
        u->values.insert(u->values.end(), v, v + esize);
        ++n;
      }
      remap[f].push_back(static_cast<int32_t>(pos));
    }
  }
  u->length = n;
  return u;
}

// A categorical column's categories across files: shared when equal in every file, else
// their union in first-seen order, with each file's codes remapped onto it.
MergedCategories MergeCategories(const std::vector<const anndata::ColumnLayout*>& layouts) {
  MergedCategories m;
  m.remap.resize(layouts.size());
  if ((m.categories = MergeNumericCategories(layouts, m.remap))) return m;
  m.categories = layouts[0]->categories;
  const std::vector<std::string> first = CategoryLabels(*m.categories);
  std::vector<std::vector<std::string>> labels = {first};
  bool differ = false;
  for (size_t f = 1; f < layouts.size(); ++f) {
    labels.push_back(CategoryLabels(*layouts[f]->categories));
    differ = differ || labels.back() != first;
  }
  if (!differ) return m;
  auto u = std::make_shared<Column>();
  u->info.kind = ColumnKind::kString;
  std::unordered_map<std::string, int32_t> code_of;
  for (size_t f = 0; f < layouts.size(); ++f) {
    for (const std::string& label : labels[f]) {
      auto [it, added] = code_of.emplace(label, static_cast<int32_t>(u->strings.size()));
      if (added) u->strings.push_back(label);
      m.remap[f].push_back(it->second);
    }
  }
  u->length = static_cast<int64_t>(u->strings.size());
  m.categories = u;
  return m;
}

}  // namespace

void SetOpenInterruptCheck(bool (*check)()) { io::SetProbeInterruptCheck(check); }
void ForgetOpenProbes() { io::ForgetProbeVerdicts(); }

Result<std::shared_ptr<Collection>> Collection::Open(const std::vector<std::string>& given,
                                                     const OpenOptions& options) {
  if (given.empty()) return Status::Invalid("no files given");
  CF_ASSIGN_OR_RETURN(const std::vector<std::string> paths, ExpandSourcePaths(given));
  auto impl = std::make_unique<Impl>();
  CF_ASSIGN_OR_RETURN(impl->value_check, io::ParseValueCheck(options.values));
  impl->paths = paths;
  impl->offsets.push_back(0);
  if (!options.file_layers.empty() && options.file_layers.size() != paths.size()) {
    return Status::Invalid("file_layers: " + std::to_string(options.file_layers.size()) + " layers for " +
                           std::to_string(paths.size()) + " files; give one per file");
  }
  std::vector<std::string> layers = options.file_layers;
  if (layers.empty()) layers.assign(paths.size(), options.layer);
  const io::IsolationLimits isolation =
      io::ResolveIsolation(options.isolate, options.open_timeout_s, options.probe_memory_mb);
  if (isolation.enabled) CF_RETURN_IF_ERROR(ProbeOpens(paths, layers, isolation));
  for (size_t i = 0; i < paths.size(); ++i) {
    const std::string& p = paths[i];
    CF_ASSIGN_OR_RETURN(auto f, OpenAnnDataSource(p, layers[i]));
    if (isolation.enabled) f->IsolateLibhdf5Reads(isolation);
    impl->offsets.push_back(impl->offsets.back() + f->n_obs());
    impl->summaries.push_back(f->Summarize());
    impl->files.push_back(std::move(f));
  }
  // Repeated gene names are made unique as anndata's var_names_make_unique() does, alone
  // and in a collection alike (collection/gene_join.h).
  std::vector<std::optional<std::vector<std::string>>> unique(impl->files.size());
  std::vector<const std::vector<std::string>*> genes;
  for (size_t i = 0; i < impl->files.size(); ++i) {
    unique[i] = MakeNamesUnique(impl->files[i]->var_names());
    genes.push_back(unique[i] ? &*unique[i] : &impl->files[i]->var_names());
  }
  CF_ASSIGN_OR_RETURN(GeneSpace space, JoinGenes(paths, genes, options.join, options.genes));
  impl->var_names = std::move(space.var_names);
  impl->gene_maps = std::move(space.maps);
  impl->gene_order_preserving = std::move(space.order_preserving);
  impl->obs_columns = CommonColumns(*impl);
  for (const ColumnInfo& c : impl->obs_columns) {
    if (c.kind != ColumnKind::kCategorical) continue;
    std::vector<const anndata::ColumnLayout*> layouts;
    for (const auto& f : impl->files) layouts.push_back(f->obs().Find(c.name));
    impl->merged_categories.emplace(c.name, MergeCategories(layouts));
  }
  impl->pool = std::make_unique<util::ThreadPool>(options.threads);
  impl->decode_prefix = !options.verify_whole_chunks;
  // indptr must start at 0: checked once here, cheaply, for every CSR file.
  for (const auto& f : impl->files) {
    const auto& m = f->matrix();
    if (m.encoding != anndata::MatrixEncoding::kCsr) continue;
    CF_ASSIGN_OR_RETURN(auto first, io::ReadRange<int64_t>(m.indptr, f->file(), 0, 1, *impl->pool));
    if (first[0] != 0) {
      return Status::Invalid(m.indptr.Where() + ": starts at " + std::to_string(first[0]) +
                             ", expected 0");
    }
    CF_ASSIGN_OR_RETURN(auto last, io::ReadRange<int64_t>(m.indptr, f->file(), m.n_rows,
                                                          m.n_rows + 1, *impl->pool));
    if (last[0] != m.nnz()) {
      return Status::Invalid(m.indptr.Where() + ": ends at " + std::to_string(last[0]) +
                             " but data has " + std::to_string(m.nnz()) + " values");
    }
  }
  return std::shared_ptr<Collection>(new Collection(std::move(impl)));
}

Collection::Collection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Collection::~Collection() = default;

int64_t Collection::n_obs() const { return impl_->n_obs(); }
int64_t Collection::n_vars() const { return impl_->n_vars(); }
const std::vector<std::string>& Collection::files() const { return impl_->paths; }
const std::vector<int64_t>& Collection::file_offsets() const { return impl_->offsets; }
const std::vector<std::string>& Collection::var_names() const { return impl_->var_names; }
std::vector<ColumnInfo> Collection::obs_columns() const { return impl_->obs_columns; }
const std::vector<FileSummary>& Collection::summaries() const { return impl_->summaries; }
int Collection::threads() const { return impl_->pool->size(); }

std::vector<ColumnInfo> Collection::var_columns() const {
  std::vector<ColumnInfo> out;
  for (const auto& c : impl_->files[0]->var().columns) out.push_back(c.info);
  return out;
}

Result<CsrMatrix> Collection::Read(std::span<const int64_t> rows) const {
  CsrMatrix out;
  CF_RETURN_IF_ERROR(ReadInto(rows, out));
  return out;
}

Status Collection::ReadInto(std::span<const int64_t> rows, CsrMatrix& out, bool parallel) const {
  CF_RETURN_IF_ERROR(impl_->CheckRows(rows));
  return ReadCsrRows(*impl_, rows, out, parallel ? *impl_->pool : *impl_->caller_only);
}

Result<std::vector<std::string>> Collection::ObsNames(
    std::optional<std::span<const int64_t>> rows) const {
  std::vector<int64_t> all;
  if (!rows) {
    all.resize(static_cast<size_t>(n_obs()));
    std::iota(all.begin(), all.end(), 0);
    rows = all;
  }
  CF_RETURN_IF_ERROR(impl_->CheckRows(*rows));
  RowsByFile g = GroupRowsByFile(*impl_, *rows);
  std::vector<std::string> out(rows->size());
  for (size_t f = 0; f < impl_->files.size(); ++f) {
    if (g.local[f].empty()) continue;
    const auto& file = *impl_->files[f];
    CF_ASSIGN_OR_RETURN(auto part,
                        file.ReadIndex(file.obs(), g.local[f]));
    for (size_t k = 0; k < part.size(); ++k) out[g.positions[f][k]] = std::move(part[k]);
  }
  return out;
}

Result<Column> Collection::Obs(const std::string& name,
                               std::optional<std::span<const int64_t>> rows) const {
  std::vector<int64_t> all;
  if (!rows) {
    all.resize(static_cast<size_t>(n_obs()));
    std::iota(all.begin(), all.end(), 0);
    rows = all;
  }
  CF_RETURN_IF_ERROR(impl_->CheckRows(*rows));
  const auto& info = impl_->obs_columns;
  auto it = std::find_if(info.begin(), info.end(), [&](const ColumnInfo& c) { return c.name == name; });
  if (it == info.end()) {
    std::string have;
    for (const auto& c : info) have += (have.empty() ? "" : ", ") + c.name;
    return Status::Invalid("obs column '" + name + "' not found in " +
                           (impl_->files.size() > 1 ? "every file" : impl_->paths[0]) +
                           " (columns: " + have + ")");
  }
  const ColumnKind kind = it->kind;
  const size_t nfiles = impl_->files.size();
  RowsByFile g = GroupRowsByFile(*impl_, *rows);

  std::vector<const anndata::ColumnLayout*> layouts;
  std::vector<DType> dtypes;
  for (const auto& f : impl_->files) {
    layouts.push_back(f->obs().Find(name));
    dtypes.push_back(layouts.back()->info.dtype);
  }
  static const std::vector<std::vector<int32_t>> kNoRemap;
  std::shared_ptr<const Column> categories;
  const std::vector<std::vector<int32_t>>* remaps = &kNoRemap;
  if (kind == ColumnKind::kCategorical) {
    const MergedCategories& m = impl_->merged_categories.at(name);
    categories = m.categories;
    remaps = &m.remap;
  }

  Column out;
  out.info = *it;
  out.info.dtype = kind == ColumnKind::kCategorical ? DType::kInt32 : CommonDType(dtypes);
  out.length = static_cast<int64_t>(rows->size());
  out.categories = categories;
  out.ordered = layouts[0]->ordered;
  const size_t osize = DTypeSize(out.info.dtype);
  if (anndata::KindHasValues(kind)) out.values.resize(rows->size() * osize);
  if (anndata::KindHasMask(kind)) out.mask.resize(rows->size());
  if (anndata::KindHasStrings(kind)) out.strings.resize(rows->size());

  for (size_t f = 0; f < nfiles; ++f) {
    if (g.local[f].empty()) continue;
    CF_ASSIGN_OR_RETURN(Column part,
                        impl_->files[f]->ReadColumn(*layouts[f], g.local[f], *impl_->pool));
    const auto& pos = g.positions[f];
    if (!part.values.empty()) {
      std::vector<uint8_t> conv(pos.size() * osize);
      ConvertElements(part.info.dtype, part.values.data(), out.info.dtype, conv.data(), pos.size());
      if (!remaps->empty() && !(*remaps)[f].empty()) {
        const std::vector<int32_t>& remap = (*remaps)[f];
        auto* codes = reinterpret_cast<int32_t*>(conv.data());
        for (size_t k = 0; k < pos.size(); ++k) {
          if (codes[k] >= 0) codes[k] = remap[static_cast<size_t>(codes[k])];
        }
      }
      for (size_t k = 0; k < pos.size(); ++k) {
        std::copy_n(conv.data() + k * osize, osize, out.values.data() + pos[k] * osize);
      }
    }
    for (size_t k = 0; k < part.mask.size(); ++k) out.mask[pos[k]] = part.mask[k];
    for (size_t k = 0; k < part.strings.size(); ++k) out.strings[pos[k]] = std::move(part.strings[k]);
  }
  return out;
}

Result<Column> Collection::FileObs(size_t file, const std::string& name,
                                   std::span<const int64_t> rows) const {
  if (file >= impl_->files.size()) {
    return Status::Invalid("file " + std::to_string(file) + " out of range (" +
                           std::to_string(impl_->files.size()) + " files)");
  }
  const AnnDataSource& f = *impl_->files[file];
  const anndata::ColumnLayout* c = f.obs().Find(name);
  if (!c) return Status::Invalid(f.path() + ": obs column '" + name + "' not found");
  for (int64_t r : rows) {
    if (r < 0 || r >= f.n_obs()) {
      return Status::Invalid(f.path() + ": row " + std::to_string(r) + " out of range (" +
                             std::to_string(f.n_obs()) + " cells)");
    }
  }
  return f.ReadColumn(*c, rows, *impl_->pool);
}

Result<Column> Collection::Var(const std::string& name) const {
  const auto& file = *impl_->files[0];
  const anndata::ColumnLayout* c = file.var().Find(name);
  if (!c) return Status::Invalid(file.path() + ": var column '" + name + "' not found");
  std::vector<int64_t> rows(static_cast<size_t>(file.var().n_rows));
  std::iota(rows.begin(), rows.end(), 0);
  return file.ReadColumn(*c, rows, *impl_->pool);
}

}  // namespace cellfeed
