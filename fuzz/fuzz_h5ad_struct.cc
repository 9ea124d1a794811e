// libFuzzer target: structure-aware .h5ad files. The input bytes do not become the file;
// they drive a writer (libhdf5's own, so the HDF5 structure is always valid) that builds
// an AnnData file with fuzz-chosen sizes, dtypes, storage (contiguous, compact, chunked
// with any chunk length, deflate/shuffle/fletcher32, chunks left unwritten), shape
// attributes, indptr, indices, data, categorical codes and categories, obs/var lengths,
// raw/X and unusual encodings. The file is then opened and read as fuzz_h5ad does.
// This reaches cellfeed's own validation (shapes, indptr, indices, codes, chunk tables)
// far more often than byte mutations, which mostly exercise libhdf5's parser.
#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cellfeed/collection.h"
#include "fuzz_common.h"

namespace {

// Consumes the input; zeros once it runs out.
struct Input {
  const uint8_t* p;
  size_t n;
  uint8_t u8() { return n ? (--n, *p++) : 0; }
  uint32_t u32() { return u8() | uint32_t(u8()) << 8 | uint32_t(u8()) << 16 | uint32_t(u8()) << 24; }
  bool flag(int one_in = 2) { return u8() % one_in == 0; }
  int64_t range(int64_t lo, int64_t hi) {  // [lo, hi]
    return lo + static_cast<int64_t>(u32() % static_cast<uint64_t>(hi - lo + 1));
  }
};

struct Hid {
  hid_t id;
  explicit Hid(hid_t i) : id(i) {}
  ~Hid() {
    if (id >= 0) H5Idec_ref(id);
  }
  operator hid_t() const { return id; }
};

void StrAttr(hid_t obj, const char* name, const std::string& v) {
  Hid t(H5Tcopy(H5T_C_S1));
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  Hid s(H5Screate(H5S_SCALAR));
  Hid a(H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT));
  const char* p = v.c_str();
  H5Awrite(a, t, &p);
}

void StrListAttr(hid_t obj, const char* name, const std::vector<std::string>& v) {
  Hid t(H5Tcopy(H5T_C_S1));
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  hsize_t n = v.size();
  Hid s(H5Screate_simple(1, &n, nullptr));
  Hid a(H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT));
  std::vector<const char*> ptrs;
  for (const auto& x : v) ptrs.push_back(x.c_str());
  if (n) H5Awrite(a, t, ptrs.data());
}

void IntListAttr(hid_t obj, const char* name, const std::vector<int64_t>& v) {
  hsize_t n = v.size();
  Hid s(H5Screate_simple(1, &n, nullptr));
  Hid a(H5Acreate2(obj, name, H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT));
  if (n) H5Awrite(a, H5T_NATIVE_INT64, v.data());
}

hid_t Group(hid_t parent, const char* name, const char* encoding) {
  hid_t g = H5Gcreate2(parent, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (encoding) {
    StrAttr(g, "encoding-type", encoding);
    StrAttr(g, "encoding-version", "0.1.0");
  }
  return g;
}

hid_t FileType(Input& in, bool integer_only) {
  static const hid_t* kInts[] = {&H5T_STD_I8LE, &H5T_STD_I16LE, &H5T_STD_I32LE, &H5T_STD_I64LE,
                                 &H5T_STD_U8LE, &H5T_STD_U16LE, &H5T_STD_U32LE, &H5T_STD_U64LE};
  static const hid_t* kAll[] = {&H5T_IEEE_F32LE, &H5T_IEEE_F64LE, &H5T_STD_I32LE,
                                &H5T_STD_I64LE,  &H5T_STD_U16LE,  &H5T_STD_I8LE,
                                &H5T_IEEE_F32BE, &H5T_STD_I32BE};
  const uint8_t k = in.u8();
  if (integer_only && k % 16 != 15) return *kInts[k % 8];
  return *kAll[k % 8];
}

// A 1-D numeric dataset of `values` (converted by libhdf5 to `ftype`), with fuzz-chosen
// storage; some chunks may be left unwritten.
void Numbers(Input& in, hid_t parent, const char* name, hid_t ftype,
             const std::vector<double>& values) {
  hsize_t n = values.size();
  hsize_t maxn = H5S_UNLIMITED;
  const int storage = in.u8() % 4;  // 0 contiguous, 1 compact, 2-3 chunked
  Hid space(H5Screate_simple(1, &n, storage >= 2 ? &maxn : nullptr));
  Hid dcpl(H5Pcreate(H5P_DATASET_CREATE));
  hsize_t chunk = 1;
  bool partial = false;
  if (storage == 1 && n * 8 < 60000) {
    H5Pset_layout(dcpl, H5D_COMPACT);
  } else if (storage >= 2) {
    chunk = static_cast<hsize_t>(in.range(1, 9));
    H5Pset_chunk(dcpl, 1, &chunk);
    const uint8_t f = in.u8();
    if (f & 1) H5Pset_shuffle(dcpl);
    if (f & 2) H5Pset_deflate(dcpl, 1);
    if (f & 4) H5Pset_fletcher32(dcpl);
    partial = (f & 0x30) == 0x30;
    if (f & 8) {
      double fill = static_cast<double>(static_cast<int8_t>(in.u8()));
      H5Pset_fill_value(dcpl, H5T_NATIVE_DOUBLE, &fill);
    }
  }
  Hid d(H5Dcreate2(parent, name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
  if (n == 0) return;
  if (!partial) {
    H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
    return;
  }
  for (hsize_t c0 = 0; c0 < n; c0 += chunk) {
    if (in.flag(3)) continue;  // this chunk is never written: no address
    hsize_t cnt = std::min(chunk, n - c0);
    Hid fs(H5Dget_space(d));
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &c0, nullptr, &cnt, nullptr);
    Hid ms(H5Screate_simple(1, &cnt, nullptr));
    H5Dwrite(d, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, values.data() + c0);
  }
}

void Strings(Input& in, hid_t parent, const char* name, const std::vector<std::string>& v) {
  Hid t(H5Tcopy(H5T_C_S1));
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  hsize_t n = v.size(), maxn = H5S_UNLIMITED, chunk = static_cast<hsize_t>(in.range(1, 5));
  const bool chunked = in.flag();
  Hid space(H5Screate_simple(1, &n, chunked ? &maxn : nullptr));
  Hid dcpl(H5Pcreate(H5P_DATASET_CREATE));
  if (chunked) {
    H5Pset_chunk(dcpl, 1, &chunk);
    if (in.flag()) H5Pset_deflate(dcpl, 1);
  }
  Hid d(H5Dcreate2(parent, name, t, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
  StrAttr(d, "encoding-type", "string-array");
  StrAttr(d, "encoding-version", "0.2.0");
  std::vector<const char*> ptrs;
  for (const auto& x : v) ptrs.push_back(x.c_str());
  if (n) H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data());
}

int64_t Jitter(Input& in, int64_t v) {  // usually v, sometimes off by a little or a lot
  switch (in.u8() % 16) {
    case 0: return v + 1;
    case 1: return v - 1;
    case 2: return static_cast<int32_t>(in.u32());
    default: return v;
  }
}

void DataFrame(Input& in, hid_t file, const char* name, int64_t n, const char* prefix) {
  Hid g(Group(file, name, "dataframe"));
  std::vector<std::string> index;
  const int64_t len = Jitter(in, n);
  for (int64_t i = 0; i < std::max<int64_t>(0, std::min<int64_t>(len, 64)); ++i) {
    index.push_back(prefix + std::to_string(in.flag(8) ? 0 : i));  // duplicates sometimes
  }
  StrAttr(g, "_index", in.flag(32) ? "nope" : "_index");
  Strings(in, g, "_index", index);
  std::vector<std::string> order;
  // A categorical column.
  if (in.flag(4) != 0) {
    Hid c(Group(g, "cat", in.flag(32) ? "categorical-ish" : "categorical"));
    const int64_t k = in.range(0, 4);
    std::vector<std::string> cats;
    for (int64_t j = 0; j < k; ++j) cats.push_back("c" + std::to_string(j));
    Strings(in, c, "categories", cats);
    std::vector<double> codes;
    for (int64_t i = 0; i < Jitter(in, n) && i < 64; ++i) {
      codes.push_back(in.flag(6) ? static_cast<int8_t>(in.u8()) : in.range(-1, std::max<int64_t>(k - 1, -1)));
    }
    Numbers(in, c, "codes", in.flag(16) ? H5T_IEEE_F32LE : H5T_STD_I8LE, codes);
    IntListAttr(c, "ordered", {in.u8() % 2});
    order.push_back("cat");
  }
  // A numeric column.
  if (in.flag(4) != 0) {
    std::vector<double> v;
    for (int64_t i = 0; i < Jitter(in, n) && i < 64; ++i) v.push_back(in.range(-9, 9) * 0.5);
    Numbers(in, g, "num", FileType(in, false), v);
    order.push_back("num");
  }
  if (in.flag(16)) order.push_back("ghost");
  StrListAttr(g, "column-order", order);
}

void Matrix(Input& in, hid_t parent, const char* name, int64_t n_obs, int64_t n_vars) {
  const uint8_t kind = in.u8() % 8;
  if (kind == 7) {  // dense
    std::vector<double> x;
    const int64_t rows = Jitter(in, n_obs), cols = n_vars;
    for (int64_t i = 0; i < std::max<int64_t>(rows, 0) * cols && i < 4096; ++i) {
      x.push_back(in.flag(3) ? in.range(-3, 9) : 0);
    }
    hsize_t dims[2] = {static_cast<hsize_t>(std::max<int64_t>(rows, 0)),
                       static_cast<hsize_t>(cols)};
    if (static_cast<int64_t>(x.size()) != rows * cols) return;
    Hid space(H5Screate_simple(2, dims, nullptr));
    Hid dcpl(H5Pcreate(H5P_DATASET_CREATE));
    if (in.flag() && dims[0] > 0 && dims[1] > 0) {
      hsize_t ch[2] = {static_cast<hsize_t>(in.range(1, 5)), static_cast<hsize_t>(in.range(1, 5))};
      H5Pset_chunk(dcpl, 2, ch);
      if (in.flag()) H5Pset_deflate(dcpl, 1);
    }
    Hid d(H5Dcreate2(parent, name, FileType(in, false), space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
    StrAttr(d, "encoding-type", "array");
    if (!x.empty()) H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, x.data());
    return;
  }
  const char* enc = kind == 6 ? (in.flag() ? "csc_matrix" : "coo_matrix") : "csr_matrix";
  Hid g(Group(parent, name, enc));
  std::vector<int64_t> shape = {Jitter(in, n_obs), Jitter(in, n_vars)};
  if (in.flag(32)) shape.push_back(1);
  if (!in.flag(32)) IntListAttr(g, "shape", shape);
  // A valid CSR of n_obs rows, then perturbed.
  std::vector<double> indptr = {0}, indices, data;
  for (int64_t r = 0; r < n_obs; ++r) {
    const int64_t k = n_vars ? in.range(0, std::min<int64_t>(n_vars, 6)) : 0;
    for (int64_t j = 0; j < k; ++j) {
      indices.push_back(in.flag(12) ? static_cast<int16_t>(in.u8() * 3 - 300) : in.range(0, n_vars - 1));
      data.push_back(in.flag(16) ? -1.5 : in.range(1, 7));
    }
    indptr.push_back(static_cast<double>(indices.size()));
  }
  const int edits = in.u8() % 4 == 0 ? in.range(1, 3) : 0;
  for (int e = 0; e < edits && !indptr.empty(); ++e) {
    indptr[static_cast<size_t>(in.range(0, static_cast<int64_t>(indptr.size()) - 1))] =
        static_cast<int16_t>(in.u8() - 100);
  }
  if (in.flag(16) && !data.empty()) data.pop_back();
  if (in.flag(16) && !indptr.empty()) indptr.pop_back();
  Numbers(in, g, "data", FileType(in, false), data);
  Numbers(in, g, "indices", FileType(in, true), indices);
  Numbers(in, g, "indptr", in.flag() ? H5T_STD_I32LE : FileType(in, true), indptr);
}

bool Build(const std::string& path, Input& in) {
  Hid file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  if (file < 0) return false;
  const int64_t n_obs = in.range(0, 12), n_vars = in.range(0, 8);
  if (!in.flag(32)) Matrix(in, file, "X", n_obs, n_vars);
  if (!in.flag(32)) DataFrame(in, file, "obs", n_obs, "cell");
  if (!in.flag(32)) DataFrame(in, file, "var", n_vars, "g");
  if (in.flag(4)) {
    Hid raw(Group(file, "raw", "raw"));
    const int64_t raw_vars = n_vars + in.range(0, 3);
    Matrix(in, raw, "X", n_obs, raw_vars);
    DataFrame(in, raw, "var", raw_vars, "r");
  }
  return true;
}

void Exercise(const std::string& path, const std::string& layer) {
  auto opened = cellfeed::fuzz::OpenOrNull(path, layer, 2);
  if (!opened) return;
  const bool verbose = cellfeed::fuzz::Verbose();
  const cellfeed::Collection& c = *opened;
  const int64_t n = c.n_obs();
  std::vector<int64_t> rows;
  for (int64_t r = 0; r < n; ++r) rows.push_back(n - 1 - r);
  if (n > 0) rows.push_back(0);
  auto m = c.Read(rows);
  if (verbose) {
    std::fprintf(stderr, "read(%s) %lld rows: %s\n", layer.c_str(), static_cast<long long>(rows.size()),
                 m.ok() ? "ok" : m.status().message().c_str());
  }
  if (m.ok()) {
    cellfeed::fuzz::AbortUnlessValidCsr(m.value(), rows.size(), c.n_vars());
  }
  for (const auto& col : c.obs_columns()) {
    auto v = c.Obs(col.name, rows);
    if (v.ok() && v.value().length != static_cast<int64_t>(rows.size())) std::abort();
  }
  (void)c.ObsNames(rows);
  for (const auto& col : c.var_columns()) (void)c.Var(col.name);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  static const std::string path =
      std::string(dir) + "/cellfeed_fuzz_struct_" + std::to_string(getpid()) + ".h5ad";
  unlink(path.c_str());  // a fresh inode each time (libhdf5 knows open files by inode)
  Input in{data, size};
  if (!Build(path, in)) return 0;
  Exercise(path, "");
  Exercise(path, "raw");
  unlink(path.c_str());
  if (H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) != 0) {
    std::fprintf(stderr, "fuzz_h5ad_struct: HDF5 identifiers left open\n");
    std::abort();
  }
  return 0;
}
