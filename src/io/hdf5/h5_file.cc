#include "io/hdf5/h5_file.h"

#include <lzf.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace cellfeed::io {

namespace {
std::atomic<Hdf5TraceFn> g_trace{nullptr};
}  // namespace

void SetHdf5Trace(Hdf5TraceFn fn) { g_trace.store(fn); }

std::recursive_mutex& Hdf5Mutex() {
  static std::recursive_mutex m;
  return m;
}

namespace {

using Lock = std::lock_guard<std::recursive_mutex>;


void TraceHdf5(const std::string& element, const std::string& attribute = "") {
  if (Hdf5TraceFn fn = g_trace.load(std::memory_order_relaxed)) fn(element, attribute);
}

std::string WithReason(std::string message);

// Whole-array reads into memory (strings, categories, attributes) are refused when the
// array claims more than a file of `file_size` bytes can hold: deflate expands at most
// ~1032x, so anything beyond that is a corrupt or hostile size field, not data.
Status CheckPlausibleSize(uint64_t n, uint64_t bytes_each, uint64_t file_size,
                          const std::string& where) {
  const uint64_t limit = std::min<uint64_t>(file_size, uint64_t{1} << 40) * 1100 + (1u << 20);
  if (bytes_each == 0) bytes_each = 1;
  if (n > limit / bytes_each) {
    return Status::Invalid(where + ": claims " + std::to_string(n) + " elements, more than a " +
                           "file of " + std::to_string(file_size) + " bytes can hold");
  }
  return Status::OK();
}

// Closes an HDF5 identifier at scope exit.
class Hid {
 public:
  explicit Hid(hid_t id = H5I_INVALID_HID) : id_(id) {}
  ~Hid() {
    if (id_ >= 0) H5Idec_ref(id_);
  }
  Hid(Hid&& o) noexcept : id_(o.id_) { o.id_ = H5I_INVALID_HID; }
  Hid(const Hid&) = delete;
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_;
};

void SilenceHdf5Errors() {
  static bool done = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)done;
}

// LZF (filter 32000) is h5py's own filter: libhdf5 cannot decode it unless someone
// registers it. Our pread path decodes LZF chunks itself, but variable-length strings
// (obs/var index, string columns, categories) are read through libhdf5, and anndata
// compresses those too (write_h5ad(compression="lzf")). Decode-only, as h5py's filter.
size_t LzfHdf5Filter(unsigned flags, size_t cd_nelmts, const unsigned cd_values[], size_t nbytes,
                     size_t* buf_size, void** buf) {
  if (!(flags & H5Z_FLAG_REVERSE)) return 0;  // no encoder: files are opened read-only
  if (nbytes == 0) return 0;  // liblzf would read a control byte anyway
  // h5py stores the chunk's byte size in cd_values[2]; fall back to growing the buffer.
  size_t out_size = (cd_nelmts >= 3 && cd_values[2] != 0) ? cd_values[2] : *buf_size;
  // LZF expands at most ~88x: never grow past that (a corrupt stream is not data).
  const size_t most = nbytes * 90 + 64;
  out_size = std::min(out_size, most);
  for (int attempt = 0; attempt < 32 && out_size > 0 && out_size <= UINT32_MAX; ++attempt) {
    void* out = std::malloc(out_size);
    if (!out) return 0;
    errno = 0;
    unsigned n = lzf_decompress(*buf, static_cast<unsigned>(nbytes), out,
                                static_cast<unsigned>(out_size));
    if (n > 0) {
      std::free(*buf);
      *buf = out;
      *buf_size = out_size;
      return n;
    }
    std::free(out);
    if (errno != E2BIG || out_size >= most) return 0;
    out_size = std::min(out_size * 2, most);
  }
  return 0;
}

void RegisterLzfFilter() {
  static bool done = [] {
    if (H5Zfilter_avail(32000) > 0) return true;  // a plugin or the application has one
    static const H5Z_class2_t kLzf = {
        H5Z_CLASS_T_VERS, static_cast<H5Z_filter_t>(32000), 0, 1, "lzf (cellfeed, decode only)",
        nullptr, nullptr, LzfHdf5Filter};
    H5Zregister(&kLzf);
    return true;
  }();
  (void)done;
}

bool LinkExists(hid_t file, const std::string& path) {
  if (path.empty() || path == "/") return true;
  // H5Lexists fails on a missing intermediate group, so walk the path.
  std::string prefix;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string::npos) next = path.size();
    if (next > pos) {
      prefix += "/" + path.substr(pos, next - pos);
      if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
      if (H5Oexists_by_name(file, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    }
    pos = next + 1;
  }
  return true;
}

Result<DType> MapType(hid_t type, const std::string& where) {
  H5T_class_t cls = H5Tget_class(type);
  size_t size = H5Tget_size(type);
  if (cls == H5T_ENUM) {
    // h5py stores numpy bool as an int8 enum {FALSE, TRUE}.
    if (size == 1 && H5Tget_nmembers(type) == 2) return DType::kBool;
    return Status::Unsupported(where + ": enum dtype other than bool is not supported");
  }
  if (cls == H5T_INTEGER || cls == H5T_FLOAT) {
    if (size > 1 && H5Tget_order(type) != H5T_ORDER_LE) {
      return Status::Unsupported(where + ": big-endian data is not supported");
    }
  }
  if (cls == H5T_INTEGER) {
    bool sign = H5Tget_sign(type) == H5T_SGN_2;
    switch (size) {
      case 1: return sign ? DType::kInt8 : DType::kUInt8;
      case 2: return sign ? DType::kInt16 : DType::kUInt16;
      case 4: return sign ? DType::kInt32 : DType::kUInt32;
      case 8: return sign ? DType::kInt64 : DType::kUInt64;
    }
  }
  if (cls == H5T_FLOAT) {
    if (size == 4) return DType::kFloat32;
    if (size == 8) return DType::kFloat64;
    return Status::Unsupported(where + ": float of " + std::to_string(size) +
                               " bytes is not supported");
  }
  if (cls == H5T_STRING) {
    return Status::Unsupported(where + ": holds strings, expected numbers");
  }
  if (cls == H5T_COMPOUND) {
    // numpy complex numbers are h5py compounds {r, i} of two floats.
    if (H5Tget_nmembers(type) == 2) {
      char* r = H5Tget_member_name(type, 0);
      char* i = H5Tget_member_name(type, 1);
      const bool complex = r && i && std::strcmp(r, "r") == 0 && std::strcmp(i, "i") == 0;
      H5free_memory(r);
      H5free_memory(i);
      if (complex) {
        return Status::Unsupported(where + ": complex numbers are not supported (real "
                                   "integer or float dtypes expected)");
      }
    }
    return Status::Unsupported(where + ": compound dtype is not supported (real integer or "
                               "float dtypes expected)");
  }
  return Status::Unsupported(where + ": HDF5 type class " + std::to_string(int(cls)) +
                             " is not supported");
}

hid_t NativeTypeFor(DType t) {
  switch (t) {
    case DType::kBool: return H5T_NATIVE_UINT8;
    case DType::kInt8: return H5T_NATIVE_INT8;
    case DType::kInt16: return H5T_NATIVE_INT16;
    case DType::kInt32: return H5T_NATIVE_INT32;
    case DType::kInt64: return H5T_NATIVE_INT64;
    case DType::kUInt8: return H5T_NATIVE_UINT8;
    case DType::kUInt16: return H5T_NATIVE_UINT16;
    case DType::kUInt32: return H5T_NATIVE_UINT32;
    case DType::kUInt64: return H5T_NATIVE_UINT64;
    case DType::kFloat32: return H5T_NATIVE_FLOAT;
    case DType::kFloat64: return H5T_NATIVE_DOUBLE;
  }
  return H5T_NATIVE_UINT8;
}

// Reads a string-typed attribute or dataset's elements (vlen or fixed length).
template <typename ReadFn>
Result<std::vector<std::string>> ReadStringElements(hid_t type, size_t n, ReadFn read,
                                                    const std::string& where) {
  std::vector<std::string> out;
  out.reserve(n);
  if (H5Tget_class(type) != H5T_STRING) {
    return Status::Invalid(where + ": expected strings");
  }
  if (H5Tis_variable_str(type) > 0) {
    Hid mem(H5Tcopy(H5T_C_S1));
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5Tset_cset(mem.get(), H5Tget_cset(type));
    std::vector<char*> ptrs(n, nullptr);
    if (n > 0 && read(mem.get(), ptrs.data()) < 0) {
      for (char* p : ptrs) free(p);
      return Status::Invalid(WithReason(where + ": cannot read strings"));
    }
    for (char* p : ptrs) {
      out.emplace_back(p ? p : "");
      free(p);  // libhdf5 allocates vlen strings with malloc
    }
    return out;
  }
  size_t width = H5Tget_size(type);
  Hid mem(H5Tcopy(H5T_C_S1));
  H5Tset_size(mem.get(), width);
  H5Tset_strpad(mem.get(), H5T_STR_NULLPAD);
  std::vector<char> buf(n * width + 1, 0);
  if (n > 0 && read(mem.get(), buf.data()) < 0) {
    return Status::Invalid(WithReason(where + ": cannot read strings"));
  }
  for (size_t i = 0; i < n; ++i) {
    const char* p = buf.data() + i * width;
    out.emplace_back(p, strnlen(p, width));
  }
  return out;
}

// The innermost message of libhdf5's error stack ("truncated file: eof = ...", "ring
// type mismatch ..."), for messages about why a libhdf5 call failed. Call right after
// the failing call, holding the lock.
std::string Hdf5Reason() {
  std::string reason;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned n, const H5E_error2_t* e, void* out) -> herr_t {
        auto* r = static_cast<std::string*>(out);
        if (r->empty() && e && e->desc && *e->desc) *r = e->desc;
        return 0;
      },
      &reason);
  H5Eclear2(H5E_DEFAULT);
  return reason;
}

std::string WithReason(std::string message) {
  std::string r = Hdf5Reason();
  return r.empty() ? message : message + " (libhdf5: " + r + ")";
}

uint64_t ReadLE(const unsigned char* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Why libhdf5 refused a file whose signature it found: reads the superblock (format
// spec, "Superblock" versions 0-3) for the end-of-file address and compares it with the
// file's size. Returns an IOError for a truncated file, else an Invalid status.
Status DiagnoseUnopenable(const std::string& path, const std::string& hdf5_reason) {
  const std::string generic =
      path + ": not a readable HDF5 file: libhdf5 cannot open it" +
      (hdf5_reason.empty() ? std::string() : " (libhdf5: " + hdf5_reason + ")");
  FILE* fp = fopen(path.c_str(), "rb");
  if (!fp) return Status::IOError(path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (fstat(fileno(fp), &st) != 0) {
    fclose(fp);
    return Status::Invalid(generic);
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  static const unsigned char kSig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  unsigned char sb[64];
  uint64_t base = 0;
  size_t got = 0;
  bool found = false;
  // The signature is at 0, 512, 1024, 2048, ... (after a user block).
  for (uint64_t at = 0; at < size; at = at == 0 ? 512 : at * 2) {
    if (fseeko(fp, static_cast<off_t>(at), SEEK_SET) != 0) break;
    got = fread(sb, 1, sizeof(sb), fp);
    if (got >= 8 && std::memcmp(sb, kSig, 8) == 0) {
      base = at;
      found = true;
      break;
    }
  }
  fclose(fp);
  if (!found) return Status::Invalid(generic);
  const std::string truncated = path + ": file is truncated: ";
  if (got < 9) {
    return Status::IOError(truncated + std::to_string(size) + " bytes, it ends inside the "
                           "HDF5 superblock");
  }
  const int version = sb[8];
  size_t off_size_at, eof_at_after_sizes;
  if (version <= 1) {
    off_size_at = 13;
    eof_at_after_sizes = version == 0 ? 24 : 28;  // + 2 offsets (base, free space)
  } else if (version <= 3) {
    off_size_at = 9;
    eof_at_after_sizes = 12;
  } else {
    return Status::Invalid(generic);
  }
  if (got <= off_size_at) {
    return Status::IOError(truncated + std::to_string(size) + " bytes, it ends inside the "
                           "HDF5 superblock");
  }
  const int osz = sb[off_size_at];
  if (osz != 2 && osz != 4 && osz != 8) return Status::Invalid(generic);
  const size_t eof_at = eof_at_after_sizes + 2 * static_cast<size_t>(osz);
  if (got < eof_at + static_cast<size_t>(osz)) {
    return Status::IOError(truncated + std::to_string(size) + " bytes, it ends inside the "
                           "HDF5 superblock");
  }
  // Addresses are relative to the base address, which libhdf5 takes to be where the
  // signature is (it corrects a superblock that says otherwise).
  const uint64_t eof = ReadLE(sb + eof_at, osz);
  const uint64_t want = base + eof;
  if (want > size && eof != (osz == 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * osz)) - 1)) {
    return Status::IOError(truncated + std::to_string(size) + " bytes on disk, its HDF5 "
                           "superblock says " + std::to_string(want) + " (" +
                           std::to_string(want - size) + " missing)");
  }
  return Status::Invalid(generic);
}

}  // namespace

size_t DatasetLayout::chunk_bytes() const {
  size_t n = DTypeSize(dtype);
  for (int64_t c : chunk_shape) n *= static_cast<size_t>(c);
  return n;
}

Result<std::shared_ptr<H5File>> H5File::Open(const std::string& path) {
  Lock lock(Hdf5Mutex());
  TraceHdf5(path);
  SilenceHdf5Errors();
  RegisterLzfFilter();
  FILE* probe = fopen(path.c_str(), "rb");
  if (!probe) return Status::IOError(path + ": cannot open: " + std::strerror(errno));
  fclose(probe);
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    return Status::Invalid(path + ": not an HDF5 file (no HDF5 signature found)");
  }
  // The sec2 driver (one file, POSIX I/O) explicitly: we fstat its descriptor below.
  Hid fapl(H5Pcreate(H5P_FILE_ACCESS));
  if (fapl.valid()) H5Pset_fapl_sec2(fapl.get());
  hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.valid() ? fapl.get() : H5P_DEFAULT);
  if (id < 0) return DiagnoseUnopenable(path, Hdf5Reason());
  // libhdf5 before 1.14.4 reports chunk addresses relative to the end of the user block.
  uint64_t userblock = 0;
  unsigned maj = 0, min = 0, rel = 0;
  H5get_libversion(&maj, &min, &rel);
  bool relative = maj == 1 && (min < 14 || (min == 14 && rel < 4));
  if (relative) {
    Hid fcpl(H5Fget_create_plist(id));
    hsize_t ub = 0;
    if (fcpl.valid() && H5Pget_userblock(fcpl.get(), &ub) >= 0) userblock = ub;
  }
  auto f = std::shared_ptr<H5File>(new H5File(path, id, userblock));
  // What the file was when opened, through libhdf5's own descriptor: string reads go
  // through libhdf5 after open, and must not read a file changed since (see CheckUnchanged).
  void* handle = nullptr;
  if (H5Fget_vfd_handle(id, H5P_DEFAULT, &handle) >= 0 && handle != nullptr) {
    f->fd_ = *static_cast<int*>(handle);
    auto identity = FileIdentity::Of(f->fd_, path);
    if (identity.ok()) {
      f->identity_ = identity.value();
    } else {
      f->fd_ = -1;
    }
  }
  if (f->identity_.size == 0) {
    hsize_t sz = 0;
    if (H5Fget_filesize(id, &sz) >= 0) f->identity_.size = sz;
  }
  H5Eclear2(H5E_DEFAULT);
  return f;
}

Status H5File::CheckUnchanged() const {
  if (fd_ < 0) return Status::OK();
  return identity_.CheckUnchanged(fd_, path_);
}

H5File::~H5File() {
  Lock lock(Hdf5Mutex());
  H5Fclose(id_);
}

NodeKind H5File::Kind(const std::string& node) const {
  Lock lock(Hdf5Mutex());
  TraceHdf5(node);
  if (!LinkExists(id_, node)) return NodeKind::kMissing;
  H5O_info_t info;
#if H5_VERSION_GE(1, 12, 0)
  if (H5Oget_info_by_name3(id_, node.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0)
#else
  if (H5Oget_info_by_name2(id_, node.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0)
#endif
    return NodeKind::kMissing;
  if (info.type == H5O_TYPE_GROUP) return NodeKind::kGroup;
  if (info.type == H5O_TYPE_DATASET) return NodeKind::kDataset;
  return NodeKind::kOther;
}

Result<std::vector<std::string>> H5File::Children(const std::string& group) const {
  Lock lock(Hdf5Mutex());
  TraceHdf5(group);
  Hid g(H5Gopen2(id_, group.c_str(), H5P_DEFAULT));
  if (!g.valid()) return Status::Invalid(path_ + ": " + group + ": is not a group");
  H5G_info_t info;
  if (H5Gget_info(g.get(), &info) < 0) return Status::IOError(path_ + ": " + group);
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    ssize_t len = H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0,
                                     H5P_DEFAULT);
    if (len < 0) return Status::IOError(path_ + ": " + group + ": cannot list members");
    std::string name(static_cast<size_t>(len), '\0');
    H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), len + 1,
                       H5P_DEFAULT);
    names.push_back(std::move(name));
  }
  return names;
}

bool H5File::HasAttribute(const std::string& node, const std::string& attr) const {
  Lock lock(Hdf5Mutex());
  TraceHdf5(node, attr);
  if (!LinkExists(id_, node)) return false;
  return H5Aexists_by_name(id_, node.c_str(), attr.c_str(), H5P_DEFAULT) > 0;
}

Result<std::vector<std::string>> H5File::StringListAttribute(const std::string& node,
                                                            const std::string& attr) const {
  Lock lock(Hdf5Mutex());
  TraceHdf5(node, attr);
  const std::string where = path_ + ": " + node + " attribute '" + attr + "'";
  if (!LinkExists(id_, node) ||
      H5Aexists_by_name(id_, node.c_str(), attr.c_str(), H5P_DEFAULT) <= 0) {
    return Status::Invalid(where + " is missing");
  }
  Hid a(H5Aopen_by_name(id_, node.c_str(), attr.c_str(), H5P_DEFAULT, H5P_DEFAULT));
  if (!a.valid()) return Status::Invalid(WithReason(where + ": unreadable"));
  Hid type(H5Aget_type(a.get()));
  Hid space(H5Aget_space(a.get()));
  hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n < 0 || !type.valid()) return Status::Invalid(WithReason(where + ": unreadable"));
  if (n == 0) return std::vector<std::string>{};  // h5py writes empty lists as float arrays
  CF_RETURN_IF_ERROR(CheckPlausibleSize(static_cast<uint64_t>(n), H5Tget_size(type.get()),
                                        identity_.size, where));
  return ReadStringElements(
      type.get(), static_cast<size_t>(n),
      [&](hid_t mem, void* buf) { return H5Aread(a.get(), mem, buf); }, where);
}

Result<std::string> H5File::StringAttribute(const std::string& node,
                                            const std::string& attr) const {
  CF_ASSIGN_OR_RETURN(auto list, StringListAttribute(node, attr));
  if (list.size() != 1) {
    return Status::Invalid(path_ + ": " + node + " attribute '" + attr +
                           "': expected one string, found " + std::to_string(list.size()));
  }
  return list[0];
}

Result<std::vector<int64_t>> H5File::IntListAttribute(const std::string& node,
                                                     const std::string& attr) const {
  Lock lock(Hdf5Mutex());
  TraceHdf5(node, attr);
  const std::string where = path_ + ": " + node + " attribute '" + attr + "'";
  if (!LinkExists(id_, node) ||
      H5Aexists_by_name(id_, node.c_str(), attr.c_str(), H5P_DEFAULT) <= 0) {
    return Status::Invalid(where + " is missing");
  }
  Hid a(H5Aopen_by_name(id_, node.c_str(), attr.c_str(), H5P_DEFAULT, H5P_DEFAULT));
  if (!a.valid()) return Status::Invalid(WithReason(where + ": unreadable"));
  Hid type(H5Aget_type(a.get()));
  H5T_class_t cls = H5Tget_class(type.get());
  Hid space(H5Aget_space(a.get()));
  hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n < 0) return Status::Invalid(WithReason(where + ": unreadable"));
  CF_RETURN_IF_ERROR(CheckPlausibleSize(static_cast<uint64_t>(n), 8, identity_.size, where));
  std::vector<int64_t> v(static_cast<size_t>(std::max<hssize_t>(n, 0)));
  if (cls == H5T_ENUM && H5Tget_size(type.get()) == 1) {
    // numpy bools are stored as an int8 enum; read the raw byte.
    std::vector<int8_t> raw(v.size());
    if (n > 0 && H5Aread(a.get(), type.get(), raw.data()) < 0) {
      return Status::Invalid(where + ": unreadable");
    }
    for (size_t i = 0; i < raw.size(); ++i) v[i] = raw[i];
    return v;
  }
  if (cls != H5T_INTEGER && cls != H5T_FLOAT) return Status::Invalid(where + ": not numeric");
  if (n > 0 && H5Aread(a.get(), H5T_NATIVE_INT64, v.data()) < 0) {
    return Status::Invalid(where + ": unreadable as integers");
  }
  return v;
}

Result<bool> H5File::BoolAttribute(const std::string& node, const std::string& attr) const {
  CF_ASSIGN_OR_RETURN(auto v, IntListAttribute(node, attr));
  if (v.size() != 1) return Status::Invalid(path_ + ": " + node + " attribute '" + attr +
                                            "': expected one boolean");
  return v[0] != 0;
}

Result<std::string> H5File::ReferenceAttribute(const std::string& node,
                                               const std::string& attr) const {
  Lock lock(Hdf5Mutex());
  TraceHdf5(node, attr);
  const std::string where = path_ + ": " + node + " attribute '" + attr + "'";
  if (!LinkExists(id_, node) ||
      H5Aexists_by_name(id_, node.c_str(), attr.c_str(), H5P_DEFAULT) <= 0) {
    return Status::Invalid(where + " is missing");
  }
  Hid a(H5Aopen_by_name(id_, node.c_str(), attr.c_str(), H5P_DEFAULT, H5P_DEFAULT));
  if (!a.valid()) return Status::Invalid(WithReason(where + ": unreadable"));
  Hid type(H5Aget_type(a.get()));
  Hid space(H5Aget_space(a.get()));
  if (H5Tget_class(type.get()) != H5T_REFERENCE || H5Tequal(type.get(), H5T_STD_REF_OBJ) <= 0 ||
      H5Sget_simple_extent_npoints(space.get()) != 1) {
    return Status::Invalid(where + ": expected one HDF5 object reference");
  }
  hobj_ref_t ref = 0;
  if (H5Aread(a.get(), H5T_STD_REF_OBJ, &ref) < 0) {
    return Status::Invalid(WithReason(where + ": unreadable reference"));
  }
  Hid target(H5Rdereference2(id_, H5P_DEFAULT, H5R_OBJECT, &ref));
  if (!target.valid()) {
    return Status::Invalid(WithReason(where + ": reference to an object that does not exist"));
  }
  ssize_t len = H5Iget_name(target.get(), nullptr, 0);
  if (len <= 0) return Status::Invalid(where + ": the referenced object has no name");
  std::string name(static_cast<size_t>(len), '\0');
  H5Iget_name(target.get(), name.data(), static_cast<size_t>(len) + 1);
  if (!name.empty() && name[0] == '/') name.erase(0, 1);
  return name;
}

bool H5File::IsCompoundDataset(const std::string& dataset) const {
  Lock lock(Hdf5Mutex());
  TraceHdf5(dataset);
  if (!LinkExists(id_, dataset)) return false;
  Hid d(H5Dopen2(id_, dataset.c_str(), H5P_DEFAULT));
  if (!d.valid()) return false;
  Hid type(H5Dget_type(d.get()));
  return H5Tget_class(type.get()) == H5T_COMPOUND;
}

Result<std::vector<H5File::CompoundField>> H5File::ReadCompound(const std::string& dataset) const {
  Lock lock(Hdf5Mutex());
  TraceHdf5(dataset);
  const std::string where = path_ + ": " + dataset;
  CF_RETURN_IF_ERROR(CheckUnchanged());
  Hid d(H5Dopen2(id_, dataset.c_str(), H5P_DEFAULT));
  if (!d.valid()) return Status::Invalid(WithReason(where + ": missing"));
  Hid type(H5Dget_type(d.get()));
  if (H5Tget_class(type.get()) != H5T_COMPOUND) {
    return Status::Invalid(where + ": expected a compound dataset");
  }
  Hid space(H5Dget_space(d.get()));
  if (H5Sget_simple_extent_ndims(space.get()) != 1) {
    return Status::Invalid(where + ": expected a 1-D compound dataset (one record per row)");
  }
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n < 0) return Status::Invalid(WithReason(where + ": unreadable dataspace"));
  CF_RETURN_IF_ERROR(CheckPlausibleSize(static_cast<uint64_t>(n),
                                        std::max<size_t>(H5Tget_size(type.get()), 1),
                                        identity_.size, where));
  const int nmembers = H5Tget_nmembers(type.get());
  if (nmembers < 0) return Status::Invalid(WithReason(where + ": unreadable compound type"));
  std::vector<CompoundField> fields;
  for (int i = 0; i < nmembers; ++i) {
    char* raw_name = H5Tget_member_name(type.get(), static_cast<unsigned>(i));
    CompoundField field;
    field.name = raw_name ? raw_name : "";
    H5free_memory(raw_name);
    const std::string fwhere = where + " field '" + field.name + "'";
    Hid mtype(H5Tget_member_type(type.get(), static_cast<unsigned>(i)));
    if (!mtype.valid()) return Status::Invalid(WithReason(fwhere + ": unreadable type"));
    const H5T_class_t cls = H5Tget_class(mtype.get());
    // Memory type: a compound with only this field, so libhdf5 picks it out by name.
    auto read_field = [&](hid_t mem_member, size_t size, void* buf) -> Status {
      Hid mem(H5Tcreate(H5T_COMPOUND, size));
      if (!mem.valid() || H5Tinsert(mem.get(), field.name.c_str(), 0, mem_member) < 0 ||
          (n > 0 && H5Dread(d.get(), mem.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)) {
        return Status::Invalid(WithReason(fwhere + ": unreadable"));
      }
      return Status::OK();
    };
    if (cls == H5T_STRING) {
      field.is_string = true;
      const bool vlen = H5Tis_variable_str(mtype.get()) > 0;
      const size_t width = vlen ? sizeof(char*) : H5Tget_size(mtype.get());
      Hid smem(H5Tcopy(H5T_C_S1));
      H5Tset_size(smem.get(), vlen ? H5T_VARIABLE : width);
      H5Tset_cset(smem.get(), H5Tget_cset(mtype.get()));
      if (!vlen) H5Tset_strpad(smem.get(), H5T_STR_NULLPAD);
      std::vector<char> buf(static_cast<size_t>(n) * width + 1, 0);
      CF_RETURN_IF_ERROR(read_field(smem.get(), width, buf.data()));
      field.strings.reserve(static_cast<size_t>(n));
      for (hssize_t r = 0; r < n; ++r) {
        const char* p = buf.data() + static_cast<size_t>(r) * width;
        if (vlen) {
          char* s;
          std::memcpy(&s, p, sizeof(s));
          field.strings.emplace_back(s ? s : "");
          free(s);
        } else {
          field.strings.emplace_back(p, strnlen(p, width));
        }
      }
      fields.push_back(std::move(field));
      continue;
    }
    if (cls == H5T_ARRAY) {
      return Status::Unsupported(fwhere + ": holds an array per row; dataframe columns must "
                                 "hold one number or string per row");
    }
    auto dtype = MapType(mtype.get(), fwhere);
    if (!dtype.ok()) return dtype.status();
    field.dtype = dtype.value();
    const size_t esize = DTypeSize(field.dtype);
    field.values.resize(static_cast<size_t>(n) * esize);
    if (field.dtype == DType::kBool) {
      // numpy bool: a 1-byte enum; read the enum itself and keep its byte.
      Hid native(H5Tget_native_type(mtype.get(), H5T_DIR_ASCEND));
      CF_RETURN_IF_ERROR(read_field(native.get(), 1, field.values.data()));
      for (uint8_t& b : field.values) b = b != 0;
    } else {
      CF_RETURN_IF_ERROR(read_field(NativeTypeFor(field.dtype), esize, field.values.data()));
    }
    fields.push_back(std::move(field));
  }
  return fields;
}

bool H5File::IsStringDataset(const std::string& dataset) const {
  Lock lock(Hdf5Mutex());
  TraceHdf5(dataset);
  Hid d(H5Dopen2(id_, dataset.c_str(), H5P_DEFAULT));
  if (!d.valid()) return false;
  Hid type(H5Dget_type(d.get()));
  return H5Tget_class(type.get()) == H5T_STRING;
}

Result<int64_t> H5File::Length(const std::string& dataset) const {
  Lock lock(Hdf5Mutex());
  TraceHdf5(dataset);
  Hid d(H5Dopen2(id_, dataset.c_str(), H5P_DEFAULT));
  if (!d.valid()) return Status::Invalid(path_ + ": " + dataset + ": missing dataset");
  Hid space(H5Dget_space(d.get()));
  hsize_t dims[8] = {0};
  int nd = H5Sget_simple_extent_ndims(space.get());
  if (nd < 0 || nd > 8) return Status::Invalid(path_ + ": " + dataset + ": bad dataspace");
  if (nd == 0) return int64_t{1};
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  if (dims[0] > (uint64_t{1} << 48)) {
    return Status::Invalid(path_ + ": " + dataset + ": implausible length " +
                           std::to_string(dims[0]));
  }
  return static_cast<int64_t>(dims[0]);
}

Result<std::vector<uint8_t>> H5File::ReadSmallNumeric(const std::string& dataset,
                                                      DType as) const {
  Lock lock(Hdf5Mutex());
  TraceHdf5(dataset);
  const std::string where = path_ + ": " + dataset;
  CF_RETURN_IF_ERROR(CheckUnchanged());
  Hid d(H5Dopen2(id_, dataset.c_str(), H5P_DEFAULT));
  if (!d.valid()) return Status::Invalid(WithReason(where + ": missing"));
  Hid space(H5Dget_space(d.get()));
  hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n < 0) return Status::Invalid(WithReason(where + ": unreadable dataspace"));
  CF_RETURN_IF_ERROR(CheckPlausibleSize(static_cast<uint64_t>(n), DTypeSize(as), identity_.size, where));
  std::vector<uint8_t> out(static_cast<size_t>(std::max<hssize_t>(n, 0)) * DTypeSize(as));
  if (n > 0 && H5Dread(d.get(), NativeTypeFor(as), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0) {
    return Status::Invalid(WithReason(where + ": unreadable as " + DTypeName(as)));
  }
  return out;
}

Result<std::vector<std::string>> H5File::ReadStrings(
    const std::string& dataset, std::optional<std::pair<int64_t, int64_t>> range) const {
  if (isolation_ && isolation_->enabled) {
    bool probed;
    {
      std::lock_guard<std::mutex> g(probed_mu_);
      probed = probed_.count(dataset) > 0;
    }
    // The probe must read the file open here: by its path while that still names it;
    // through our descriptor once the path names another file (replaced); not at all
    // once it was deleted (libhdf5 cannot open a deleted file's /proc/self/fd link), where
    // the read stays in this process (docs/RELIABILITY.md: residual risks).
    struct stat by_path, by_fd;
    const bool same = fd_ < 0 || (::stat(path_.c_str(), &by_path) == 0 &&
                                  by_path.st_ino == identity_.inode &&
                                  by_path.st_dev == identity_.device);
    const bool deleted = !same && ::fstat(fd_, &by_fd) == 0 && by_fd.st_nlink == 0;
    if (!probed && !deleted) {
      CF_RETURN_IF_ERROR(CheckUnchanged());
      CF_RETURN_IF_ERROR(
          ProbeInChild({{"strings", path_, dataset, same ? -1 : fd_}}, *isolation_).front());
      std::lock_guard<std::mutex> g(probed_mu_);
      probed_.insert(dataset);
    }
  }
  Lock lock(Hdf5Mutex());
  TraceHdf5(dataset);
  const std::string where = path_ + ": " + dataset;
  CF_RETURN_IF_ERROR(CheckUnchanged());
  Hid d(H5Dopen2(id_, dataset.c_str(), H5P_DEFAULT));
  if (!d.valid()) return Status::Invalid(WithReason(where + ": missing string dataset"));
  Hid type(H5Dget_type(d.get()));
  Hid space(H5Dget_space(d.get()));
  if (H5Sget_simple_extent_ndims(space.get()) > 1) {
    return Status::Invalid(where + ": expected a 1-D string array");
  }
  hssize_t total = H5Sget_simple_extent_npoints(space.get());
  if (total < 0 || !type.valid()) {
    return Status::Invalid(WithReason(where + ": unreadable string dataset"));
  }
  hsize_t begin = 0, count = static_cast<hsize_t>(total);
  if (range) {
    if (range->first < 0 || range->second > total || range->first > range->second) {
      return Status::OutOfRange(where + ": string range outside the array");
    }
    begin = static_cast<hsize_t>(range->first);
    count = static_cast<hsize_t>(range->second - range->first);
  }
  // A variable-length string takes at least 16 bytes in the file (its heap reference).
  CF_RETURN_IF_ERROR(CheckPlausibleSize(count, std::max<size_t>(H5Tget_size(type.get()), 1),
                                        identity_.size, where));
  Hid mspace(H5Screate_simple(1, &count, nullptr));
  if (count > 0 && H5Sget_simple_extent_ndims(space.get()) == 1) {
    H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, &begin, nullptr, &count, nullptr);
  }
  return ReadStringElements(
      type.get(), static_cast<size_t>(count),
      [&](hid_t mem, void* buf) {
        return H5Dread(d.get(), mem, mspace.get(), space.get(), H5P_DEFAULT, buf);
      },
      range ? where + " rows [" + std::to_string(begin) + ", " + std::to_string(begin + count) + ")"
            : where);
}

void H5File::IsolateStringReads(const IsolationLimits& limits) { isolation_ = limits; }

Result<DatasetLayout> H5File::Describe(const std::string& dataset) const {
  Lock lock(Hdf5Mutex());
  TraceHdf5(dataset);
  const std::string where = path_ + ": " + dataset;
  if (!LinkExists(id_, dataset)) return Status::Invalid(where + ": missing");
  Hid d(H5Dopen2(id_, dataset.c_str(), H5P_DEFAULT));
  if (!d.valid()) return Status::Invalid(WithReason(where + ": is not a readable dataset"));
  DatasetLayout L;
  L.file_path = path_;
  L.name = dataset;
  Hid type(H5Dget_type(d.get()));
  if (!type.valid()) return Status::Invalid(WithReason(where + ": unreadable dtype"));
  CF_ASSIGN_OR_RETURN(L.dtype, MapType(type.get(), where));
  Hid space(H5Dget_space(d.get()));
  int ndims = H5Sget_simple_extent_ndims(space.get());
  if (ndims < 0) return Status::Invalid(WithReason(where + ": unreadable dataspace"));
  if (ndims == 0 || ndims > 2) {
    return Status::Unsupported(where + ": " +
                               (ndims == 0 ? std::string("a scalar is")
                                           : std::to_string(ndims) + "-D arrays are") +
                               " not supported (1-D or 2-D arrays expected)");
  }
  hsize_t dims[2] = {1, 1};
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  const size_t esize = DTypeSize(L.dtype);
  // Sizes must fit comfortably in int64 arithmetic (elements * itemsize * ...).
  constexpr uint64_t kMaxElements = uint64_t{1} << 48;
  uint64_t total = 1;
  for (int i = 0; i < ndims; ++i) {
    if (dims[i] > kMaxElements || (dims[i] > 0 && total > kMaxElements / dims[i])) {
      return Status::Invalid(where + ": implausible shape (dimension " + std::to_string(i) +
                             " = " + std::to_string(dims[i]) + ")");
    }
    total *= dims[i];
    L.shape.push_back(static_cast<int64_t>(dims[i]));
  }

  Hid dcpl(H5Dget_create_plist(d.get()));
  if (!dcpl.valid()) return Status::Invalid(WithReason(where + ": unreadable creation properties"));
  // Fill value for chunks never written (HDF5 default: zeros).
  L.fill_value.assign(esize, 0);
  H5D_fill_value_t fill_status;
  if (H5Pfill_value_defined(dcpl.get(), &fill_status) >= 0 &&
      fill_status == H5D_FILL_VALUE_USER_DEFINED) {
    if (H5Pget_fill_value(dcpl.get(), NativeTypeFor(L.dtype), L.fill_value.data()) < 0) {
      L.fill_value.assign(esize, 0);
    }
  }
  // Filter pipeline.
  std::vector<codec::Filter> filters;
  int nfilters = H5Pget_nfilters(dcpl.get());
  if (nfilters < 0 || nfilters > 32) {
    return Status::Invalid(WithReason(where + ": unreadable filter pipeline"));
  }
  for (int i = 0; i < nfilters; ++i) {
    unsigned flags = 0;
    size_t nparams = 16;
    unsigned params[16] = {0};
    char name[256] = {0};
    unsigned config = 0;
    H5Z_filter_t id =
        H5Pget_filter2(dcpl.get(), i, &flags, &nparams, params, sizeof(name), name, &config);
    if (id < 0) return Status::Invalid(WithReason(where + ": unreadable filter pipeline"));
    name[sizeof(name) - 1] = '\0';
    codec::Filter f;
    f.id = id;
    f.name = name;
    f.params.assign(params, params + std::min<size_t>(nparams, 16));
    filters.push_back(std::move(f));
  }
  auto pipeline = codec::FilterPipeline::Make(std::move(filters), esize);
  if (!pipeline.ok()) return pipeline.status().WithContext(where);
  L.filters = std::move(pipeline).value();

  // Every stored byte range must lie inside the file: a chunk index or offset pointing
  // past its end is corrupt (a file truncated after writing is refused by H5Fopen).
  auto outside = [&](uint64_t addr, uint64_t n) {
    return addr > identity_.size || n > identity_.size - addr;
  };
  H5D_layout_t layout = H5Pget_layout(dcpl.get());
  if (layout == H5D_CHUNKED) {
    L.chunked = true;
    hsize_t cdims[2] = {1, 1};
    if (H5Pget_chunk(dcpl.get(), ndims, cdims) != ndims) {
      return Status::Invalid(WithReason(where + ": unreadable chunk shape"));
    }
    uint64_t chunk_elems = 1;
    for (int i = 0; i < ndims; ++i) {
      if (cdims[i] == 0 || cdims[i] > (uint64_t{1} << 32)) {
        return Status::Invalid(where + ": invalid chunk shape");
      }
      chunk_elems *= cdims[i];
      L.chunk_shape.push_back(static_cast<int64_t>(cdims[i]));
    }
    // HDF5 chunks are at most 4 GiB.
    if (chunk_elems > uint64_t{0xFFFFFFF0} / esize) {
      return Status::Invalid(where + ": chunk of " + std::to_string(chunk_elems) +
                             " elements exceeds HDF5's 4 GiB chunk limit");
    }
    const int64_t n0 = L.num_chunks_along(0);
    const int64_t n1 = ndims > 1 ? L.num_chunks_along(1) : 1;
    // The chunk table holds one entry per grid cell; a grid far beyond what the file
    // could hold is a corrupt shape, not data.
    const uint64_t grid = static_cast<uint64_t>(n0) * static_cast<uint64_t>(n1);
    if (grid > identity_.size + (uint64_t{1} << 20)) {
      return Status::Invalid(where + ": shape needs " + std::to_string(grid) +
                             " chunks, more than a file of " + std::to_string(identity_.size) +
                             " bytes can hold");
    }
    L.chunks.resize(static_cast<size_t>(grid));
    hsize_t allocated = 0;
    if (H5Dget_num_chunks(d.get(), space.get(), &allocated) < 0) {
      return Status::Invalid(WithReason(where + ": chunk index unreadable"));
    }
    const uint64_t full_bytes = chunk_elems * esize;
    for (int64_t i = 0; i < n0 && allocated > 0; ++i) {
      for (int64_t j = 0; j < n1; ++j) {
        const int64_t k = i * n1 + j;
        hsize_t coord[2] = {static_cast<hsize_t>(i * L.chunk_shape[0]),
                            ndims > 1 ? static_cast<hsize_t>(j * L.chunk_shape[1]) : 0};
        unsigned mask = 0;
        haddr_t addr = HADDR_UNDEF;
        hsize_t size = 0;
        if (H5Dget_chunk_info_by_coord(d.get(), coord, &mask, &addr, &size) < 0) {
          return Status::Invalid(WithReason(where + ": chunk index unreadable at chunk " +
                                            std::to_string(k)));
        }
        if (addr == HADDR_UNDEF) continue;
        ChunkLocation& c = L.chunks[static_cast<size_t>(k)];
        c.address = addr + userblock_;
        c.stored_size = size;
        c.filter_mask = mask;
        if (outside(c.address, size)) {
          return Status::Invalid(where + ": chunk " + std::to_string(k) + " at byte " +
                                 std::to_string(c.address) + " (+" + std::to_string(size) +
                                 ") lies past the end of the file (" + std::to_string(identity_.size) +
                                 " bytes): corrupt chunk index");
        }
        // Unfiltered (or all filters skipped) chunks are stored whole.
        const uint64_t all = (uint64_t{1} << L.filters.filters().size()) - 1;
        const bool raw = (mask & all) == all;
        if (raw && size != full_bytes) {
          return Status::Invalid(where + ": chunk " + std::to_string(k) + " is stored " +
                                 "unfiltered in " + std::to_string(size) + " bytes, expected " +
                                 std::to_string(full_bytes));
        }
      }
    }
  } else if (layout == H5D_CONTIGUOUS) {
    if (H5Pget_external_count(dcpl.get()) > 0) {
      return Status::Unsupported(where + ": data stored in external files is not supported");
    }
    // Virtual 1 MiB-ish chunks so that readers can plan and parallelize uniformly.
    const int64_t row_bytes = static_cast<int64_t>(esize) * (ndims > 1 ? L.shape[1] : 1);
    const int64_t rows_per = std::max<int64_t>(1, (1 << 20) / std::max<int64_t>(row_bytes, 1));
    L.chunk_shape.push_back(rows_per);
    if (ndims > 1) L.chunk_shape.push_back(L.shape[1]);
    haddr_t base = H5Dget_offset(d.get());
    if (base != HADDR_UNDEF) {  // an absolute offset (user block included)
      if (outside(base, total * esize)) {
        return Status::Invalid(where + ": data at byte " + std::to_string(base) + " (+" +
                               std::to_string(total * esize) + ") lies past the end of the "
                               "file (" + std::to_string(identity_.size) + " bytes)");
      }
    }
    H5Eclear2(H5E_DEFAULT);
    const int64_t n0 = L.num_chunks_along(0);
    L.chunks.resize(static_cast<size_t>(n0));
    for (int64_t i = 0; i < n0; ++i) {
      if (base == HADDR_UNDEF) continue;  // never written: fill value
      L.chunks[static_cast<size_t>(i)].address =
          base + static_cast<uint64_t>(i * rows_per * row_bytes);
      L.chunks[static_cast<size_t>(i)].stored_size = static_cast<uint64_t>(
          std::min<int64_t>(rows_per, L.shape[0] - i * rows_per) * row_bytes);
    }
  } else if (layout == H5D_COMPACT) {
    // Compact data lives in the object header: at most 64 KiB.
    if (total * esize > 65536) {
      return Status::Invalid(where + ": compact dataset of " + std::to_string(total * esize) +
                             " bytes exceeds the 64 KiB an HDF5 object header holds");
    }
    L.compact_bytes.resize(total * esize);
    if (total > 0 && H5Dread(d.get(), NativeTypeFor(L.dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT,
                             L.compact_bytes.data()) < 0) {
      return Status::Invalid(WithReason(where + ": unreadable compact dataset"));
    }
    L.chunk_shape = L.shape;
    if (L.chunk_shape.empty()) L.chunk_shape.push_back(1);
  } else {
    return Status::Unsupported(where + ": virtual or external HDF5 datasets are not supported");
  }
  return L;
}

}  // namespace cellfeed::io
