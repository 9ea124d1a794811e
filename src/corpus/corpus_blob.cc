// A corpus's evaluated state as bytes (Corpus::Save / Corpus::Restore), so that a process
// that gets the declaration by pickle (a spawned DataLoader worker, an unpickled Loader)
// does not evaluate filters, QC metrics, splits and subsamples again: at 100M cells that
// is ~10 s per process. The bytes hold what Make computed; the declaration comes with
// them from Python (it is cheap to convert), and Restore checks that the collection holds
// the same files with the same rows. The caller checks the files' identities (size,
// mtime: the declaration's fingerprint) before trusting the bytes.
#include <algorithm>
#include <cstring>
#include <string_view>
#include <unordered_map>

#include "cellfeed/corpus.h"

namespace cellfeed {

namespace {

constexpr char kMagic[8] = {'C', 'F', 'C', 'O', 'R', 'P', 'S', '1'};

class Writer {
 public:
  void U64(uint64_t v) { Raw(&v, sizeof v); }
  void I64(int64_t v) { Raw(&v, sizeof v); }
  void F64(double v) { Raw(&v, sizeof v); }
  void Str(const std::string& s) {
    U64(s.size());
    out_.append(s);
  }
  void Strs(const std::vector<std::string>& v) {
    U64(v.size());
    for (const std::string& s : v) Str(s);
  }
  template <typename T>
  void Array(const std::vector<T>& v) {
    U64(v.size());
    Raw(v.data(), v.size() * sizeof(T));
  }
  void Raw(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

// Reads what Writer wrote; any read past the end sets failed() and yields zeros.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool failed() const { return failed_; }
  uint64_t U64() { return Pod<uint64_t>(); }
  int64_t I64() { return Pod<int64_t>(); }
  double F64() { return Pod<double>(); }
  std::string Str() {
    const uint64_t n = U64();
    if (!Have(n)) return {};
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  std::vector<std::string> Strs() {
    const uint64_t n = U64();
    std::vector<std::string> v;
    for (uint64_t i = 0; i < n && !failed_; ++i) v.push_back(Str());
    return v;
  }
  template <typename T>
  std::vector<T> Array() {
    const uint64_t n = U64();
    if (n > in_.size() / sizeof(T) || !Have(n * sizeof(T))) return {};
    std::vector<T> v(n);
    std::memcpy(v.data(), in_.data() + pos_, n * sizeof(T));
    pos_ += n * sizeof(T);
    return v;
  }
  bool Have(uint64_t n) {
    if (failed_ || n > in_.size() - pos_) {
      failed_ = true;
      return false;
    }
    return true;
  }
  bool AtEnd() const { return pos_ == in_.size(); }

 private:
  template <typename T>
  T Pod() {
    T v{};
    if (!Have(sizeof(T))) return v;
    std::memcpy(&v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string_view in_;
  size_t pos_ = 0;
  bool failed_ = false;
};

}  // namespace

std::string Corpus::Save() const {
  // Row selections are shared between splits, strata and lanes: each is written once.
  std::vector<const RowSelection*> table;
  std::unordered_map<const RowSelection*, int64_t> index;
  auto id = [&](const std::shared_ptr<const RowSelection>& s) -> int64_t {
    if (!s) return -1;
    auto [it, added] = index.emplace(s.get(), static_cast<int64_t>(table.size()));
    if (added) table.push_back(s.get());
    return it->second;
  };
  Writer body;
  body.U64(counts_.size());
  for (const SourceCounts& c : counts_) {
    body.Str(c.name);
    for (int64_t v : {c.in_files, c.passing, c.train, c.val, c.test, c.requested, c.full_copies, c.extra_cells}) {
      body.I64(v);
    }
  }
  body.U64(leaks_.size());
  for (const LeakedValue& l : leaks_) {
    body.Str(l.column);
    body.Str(l.value);
    body.Strs(l.splits);
  }
  body.U64(class_targets_.size());
  for (const auto& per_source : class_targets_) {
    body.U64(per_source.size());
    for (const ClassTarget& t : per_source) {
      body.Str(t.value);
      body.I64(t.available);
      body.I64(t.target);
    }
  }
  body.U64(split_rows_.size());
  for (const auto& splits : split_rows_) {
    for (const auto& s : splits) body.I64(id(s));
  }
  body.U64(strata_.size());
  for (const Stratum& st : strata_) {
    body.I64(id(st.rows));
    body.Array(st.weights);
    body.I64(st.target);
    body.I64(st.source);
    body.I64(st.cls);
  }
  body.U64(fixed_train_ ? 1 : 0);
  if (fixed_train_) {
    body.U64(fixed_train_->lanes.size());
    for (const SelectionLane& l : fixed_train_->lanes) {
      body.I64(id(l.rows));
      body.U64(l.key);
      body.I64(l.source);
      body.I64(l.copy);
    }
  }
  Writer w;
  w.Raw(kMagic, sizeof kMagic);
  w.Strs(collection_->files());
  w.Array(collection_->file_offsets());
  w.U64(table.size());
  for (const RowSelection* s : table) {
    w.I64(s->size());
    w.Array(s->words());
  }
  std::string out = w.Take();
  out += body.Take();
  return out;
}

Result<std::shared_ptr<const Corpus>> Corpus::Restore(std::shared_ptr<const Collection> collection,
                                                      CorpusSpec spec, std::string_view bytes) {
  auto bad = [](const std::string& what) {
    return Status::Invalid("corpus: the saved evaluation " + what + "; evaluate the declaration again");
  };
  if (!collection) return Status::Invalid("corpus: no collection");
  if (bytes.size() < sizeof kMagic || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) {
    return bad("is not one (wrong header)");
  }
  Reader r(bytes.substr(sizeof kMagic));
  const std::vector<std::string> files = r.Strs();
  const std::vector<int64_t> offsets = r.Array<int64_t>();
  if (r.failed()) return bad("is truncated");
  if (files != collection->files() || offsets != collection->file_offsets()) {
    return bad("was made over other files or rows than the collection opened now");
  }
  const uint64_t n_table = r.U64();
  std::vector<std::shared_ptr<const RowSelection>> table;
  for (uint64_t i = 0; i < n_table && !r.failed(); ++i) {
    const int64_t n_rows = r.I64();
    std::vector<uint64_t> words = r.Array<uint64_t>();
    if (r.failed() || n_rows < 0 || n_rows > offsets.back() ||
        words.size() != static_cast<size_t>((n_rows + 63) / 64)) {
      return bad("is damaged (a row selection)");
    }
    auto sel = std::make_shared<RowSelection>(n_rows);
    sel->mutable_words() = std::move(words);
    if (n_rows % 64 != 0 && (sel->words().back() >> (n_rows % 64)) != 0) {
      return bad("is damaged (rows past the end)");
    }
    sel->Finish();
    table.push_back(std::move(sel));
  }
  bool damaged = false;
  auto at = [&](int64_t i) -> std::shared_ptr<const RowSelection> {
    if (i == -1) return nullptr;
    if (i < 0 || i >= static_cast<int64_t>(table.size())) {
      damaged = true;
      return nullptr;
    }
    return table[static_cast<size_t>(i)];
  };
  auto c = std::shared_ptr<Corpus>(new Corpus());
  const uint64_t n_sources = r.U64();
  if (n_sources != spec.sources.size()) return bad("has another number of sources than the declaration");
  for (uint64_t i = 0; i < n_sources && !r.failed(); ++i) {
    SourceCounts sc;
    sc.name = r.Str();
    for (int64_t* v : {&sc.in_files, &sc.passing, &sc.train, &sc.val, &sc.test, &sc.requested,
                       &sc.full_copies, &sc.extra_cells}) {
      *v = r.I64();
    }
    if (sc.name != spec.sources[i].name) return bad("names other sources than the declaration");
    c->counts_.push_back(std::move(sc));
  }
  const uint64_t n_leaks = r.U64();
  for (uint64_t i = 0; i < n_leaks && !r.failed(); ++i) {
    LeakedValue l;
    l.column = r.Str();
    l.value = r.Str();
    l.splits = r.Strs();
    c->leaks_.push_back(std::move(l));
  }
  const uint64_t n_class = r.U64();
  for (uint64_t i = 0; i < n_class && !r.failed(); ++i) {
    std::vector<ClassTarget> per_source(std::min<uint64_t>(r.U64(), bytes.size()));
    for (ClassTarget& t : per_source) {
      t.value = r.Str();
      t.available = r.I64();
      t.target = r.I64();
    }
    c->class_targets_.push_back(std::move(per_source));
  }
  const uint64_t n_splits = r.U64();
  for (uint64_t i = 0; i < n_splits && !r.failed(); ++i) {
    std::array<std::shared_ptr<const RowSelection>, 3> splits;
    for (auto& s : splits) s = at(r.I64());
    c->split_rows_.push_back(std::move(splits));
  }
  const uint64_t n_strata = r.U64();
  for (uint64_t i = 0; i < n_strata && !r.failed(); ++i) {
    Stratum st;
    st.rows = at(r.I64());
    st.weights = r.Array<double>();
    st.target = r.I64();
    st.source = static_cast<int32_t>(r.I64());
    st.cls = static_cast<int32_t>(r.I64());
    if (!st.rows || st.source < 0 || st.source >= static_cast<int32_t>(n_sources) || st.target < 0) {
      damaged = true;
    } else if (!st.weights.empty()) {  // one weight per row; enough positive ones for the target
      const int64_t positive = std::count_if(st.weights.begin(), st.weights.end(), [](double w) { return w > 0; });
      damaged = damaged || static_cast<int64_t>(st.weights.size()) != st.rows->count() || positive < st.target;
    }
    c->strata_.push_back(std::move(st));
  }
  if (r.U64() == 1) {
    auto fixed = std::make_shared<EpochSelection>();
    const uint64_t n_lanes = r.U64();
    for (uint64_t i = 0; i < n_lanes && !r.failed(); ++i) {
      SelectionLane l;
      l.rows = at(r.I64());
      l.key = r.U64();
      l.source = static_cast<int32_t>(r.I64());
      l.copy = static_cast<int32_t>(r.I64());
      if (!l.rows || l.source < 0 || l.source >= static_cast<int32_t>(n_sources)) damaged = true;
      fixed->lanes.push_back(std::move(l));
    }
    c->fixed_train_ = std::move(fixed);
  }
  if (r.failed()) return bad("is truncated");
  if (damaged || !r.AtEnd() || c->split_rows_.size() != n_sources || c->class_targets_.size() != n_sources) {
    return bad("is damaged");
  }
  for (SourceSpec& s : spec.sources) s.files_collection = nullptr;  // only evaluation reads them
  spec.extra_columns.clear();
  c->spec_ = std::move(spec);
  c->collection_ = std::move(collection);
  return std::shared_ptr<const Corpus>(std::move(c));
}

}  // namespace cellfeed
