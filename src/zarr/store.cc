// Zip layout (APPNOTE 4.3): the end-of-central-directory record (zip64 when its fields
// overflow) points to the central directory, one entry per member with its method,
// sizes and local header offset; a member's bytes follow its local header (30 bytes +
// name + extra, read from the local header itself: its extra field may differ from the
// central one). A key written twice (zarr-python's ZipStore appends on rewrite) has
// several entries: the last wins, as in Python's zipfile.
#include "zarr/store.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "io/codec/zarr_codecs.h"
#include "storage/object_url.h"

namespace cellfeed::zarr {

namespace {

uint16_t U16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
uint32_t U32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
uint64_t U64(const uint8_t* p) { return uint64_t{U32(p)} | uint64_t{U32(p + 4)} << 32; }

class DirectoryStore final : public Store {
 public:
  static Result<std::unique_ptr<Store>> Make(const std::string& path) {
    auto s = std::unique_ptr<DirectoryStore>(new DirectoryStore());
    s->path_ = path;
    s->files_ = std::make_shared<io::FileSet>();
    // The root's metadata file stands for the store in identity checks.
    for (const char* key : {"zarr.json", ".zmetadata", ".zgroup", ".zarray"}) {
      struct stat st;
      const std::string p = path + "/" + key;
      if (::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
        CF_ASSIGN_OR_RETURN(s->main_, io::RandomAccessFile::Open(p));
        break;
      }
    }
    if (!s->main_) {
      return Status::Invalid(path + ": a directory, but not a zarr store (no zarr.json, "
                             ".zgroup or .zmetadata at its root) nor an AnnData file");
    }
    return std::unique_ptr<Store>(std::move(s));
  }
  bool is_zip() const override { return false; }
  Result<std::optional<KeyLocation>> Locate(const std::string& key) override {
    const std::string p = path_ + "/" + key;
    struct stat st;
    if (::stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::optional<KeyLocation>();
    auto [it, added] = index_.try_emplace(key, 0);
    if (added) it->second = files_->Add(p);
    KeyLocation loc;
    loc.file = it->second;
    loc.size = loc.decoded_size = static_cast<uint64_t>(st.st_size);
    return std::optional<KeyLocation>(loc);
  }
  // Metadata is read without entering the FileSet, which holds chunk files.
  Result<std::optional<std::string>> Read(const std::string& key) override {
    const std::string p = path_ + "/" + key;
    struct stat st;
    if (::stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::optional<std::string>();
    CF_ASSIGN_OR_RETURN(auto f, io::RandomAccessFile::Open(p));
    std::string text(f->size_at_open(), '\0');
    CF_RETURN_IF_ERROR(f->ReadAt(0, text.size(), text.data()));
    return std::optional<std::string>(std::move(text));
  }
  std::vector<std::string> List(const std::string& prefix) const override {
    std::vector<std::string> out;
    DIR* d = ::opendir((path_ + "/" + prefix).c_str());
    if (!d) return out;
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') out.push_back(e->d_name);
    }
    ::closedir(d);
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  std::map<std::string, uint32_t> index_;
};

struct Member {
  uint64_t header_offset = 0, compressed = 0, uncompressed = 0;
  uint16_t method = 0;
};

class ZipStore final : public Store {
 public:
  // `inner`: the group of the zip that is the store ("" = the zip's root).
  static Result<std::unique_ptr<Store>> Make(const std::string& zip, const std::string& inner) {
    auto s = std::unique_ptr<ZipStore>(new ZipStore());
    s->path_ = inner.empty() ? zip : zip + "/" + inner;
    s->zip_ = zip;
    CF_ASSIGN_OR_RETURN(auto f, io::RandomAccessFile::Open(zip));
    s->main_ = f;
    CF_RETURN_IF_ERROR(s->ReadCentralDirectory(inner));
    return std::unique_ptr<Store>(std::move(s));
  }
  bool is_zip() const override { return true; }
  Result<std::optional<KeyLocation>> Locate(const std::string& key) override {
    auto it = members_.find(prefix_ + key);
    if (it == members_.end()) return std::optional<KeyLocation>();
    const Member& m = it->second;
    const std::string where = path_ + ": zip member '" + it->first + "'";
    uint8_t h[30];
    if (m.header_offset + 30 > main_->size_at_open()) {
      return Status::Invalid(where + ": local header at byte " + std::to_string(m.header_offset) +
                             " lies past the end of the file");
    }
    CF_RETURN_IF_ERROR(main_->ReadAt(m.header_offset, 30, h));
    if (U32(h) != 0x04034b50) {
      return Status::Invalid(where + ": no local header signature at byte " +
                             std::to_string(m.header_offset));
    }
    KeyLocation loc;
    loc.offset = m.header_offset + 30 + U16(h + 26) + U16(h + 28);
    loc.size = m.compressed;
    loc.decoded_size = m.uncompressed;
    if (m.method == 8) {
      loc.deflated = true;
    } else if (m.method != 0) {
      return Status::Unsupported(where + ": compression method " + std::to_string(m.method) +
                                 " (only STORED and DEFLATE members are read)");
    } else if (m.compressed != m.uncompressed) {
      return Status::Invalid(where + ": a STORED member whose sizes differ (" +
                             std::to_string(m.compressed) + " stored, " +
                             std::to_string(m.uncompressed) + " uncompressed)");
    }
    if (loc.offset + loc.size > main_->size_at_open()) {
      return Status::Invalid(where + ": its " + std::to_string(loc.size) + " bytes at byte " +
                             std::to_string(loc.offset) + " run past the end of the file (" +
                             std::to_string(main_->size_at_open()) + " bytes)");
    }
    return std::optional<KeyLocation>(loc);
  }
  std::vector<std::string> List(const std::string& prefix) const override {
    std::set<std::string> out;
    const std::string p = prefix_ + (prefix.empty() ? "" : prefix + "/");
    for (auto it = members_.lower_bound(p); it != members_.end(); ++it) {
      if (it->first.compare(0, p.size(), p) != 0) break;
      const std::string rest = it->first.substr(p.size());
      const std::string name = rest.substr(0, rest.find('/'));
      if (!name.empty()) out.insert(name);
    }
    return {out.begin(), out.end()};
  }

 private:
  Status ReadCentralDirectory(const std::string& inner) {
    const uint64_t size = main_->size_at_open();
    const uint64_t tail = std::min<uint64_t>(size, 65535 + 22);
    std::vector<uint8_t> t(tail);
    CF_RETURN_IF_ERROR(main_->ReadAt(size - tail, tail, t.data()));
    int64_t eocd = -1;
    for (int64_t i = static_cast<int64_t>(tail) - 22; i >= 0; --i) {
      if (U32(&t[i]) == 0x06054b50) { eocd = i; break; }
    }
    if (eocd < 0) {
      if (!inner.empty()) {
        return Status::Invalid(path_ + ": " + zip_ + " is a file, not a directory nor a zip store "
                               "(a path below it names a group of a zip store)");
      }
      return Status::Invalid(path_ + ": not a zip file (no end of central directory)");
    }
    uint64_t entries = U16(&t[eocd + 10]);
    uint64_t cd_size = U32(&t[eocd + 12]);
    uint64_t cd_offset = U32(&t[eocd + 16]);
    if (entries == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {
      // zip64: a locator just before the EOCD gives the zip64 EOCD record.
      if (eocd < 20 || U32(&t[eocd - 20]) != 0x07064b50) {
        return Status::Invalid(path_ + ": zip64 end of central directory locator missing");
      }
      const uint64_t rec = U64(&t[eocd - 20 + 8]);
      uint8_t r[56];
      if (rec + 56 > size) return Status::Invalid(path_ + ": zip64 record past the end of file");
      CF_RETURN_IF_ERROR(main_->ReadAt(rec, 56, r));
      if (U32(r) != 0x06064b50) return Status::Invalid(path_ + ": bad zip64 end record");
      entries = U64(r + 32);
      cd_size = U64(r + 40);
      cd_offset = U64(r + 48);
    }
    if (cd_offset + cd_size > size) {
      return Status::Invalid(path_ + ": zip central directory (" + std::to_string(cd_size) +
                             " bytes at " + std::to_string(cd_offset) +
                             ") runs past the end of the file");
    }
    std::vector<uint8_t> cd(cd_size);
    CF_RETURN_IF_ERROR(main_->ReadAt(cd_offset, cd_size, cd.data()));
    size_t at = 0;
    for (uint64_t e = 0; e < entries; ++e) {
      if (at + 46 > cd.size() || U32(&cd[at]) != 0x02014b50) {
        return Status::Invalid(path_ + ": zip central directory entry " + std::to_string(e) +
                               " is corrupt");
      }
      const uint8_t* p = &cd[at];
      Member m;
      m.method = U16(p + 10);
      m.compressed = U32(p + 20);
      m.uncompressed = U32(p + 24);
      const size_t n = U16(p + 28), x = U16(p + 30), c = U16(p + 32);
      m.header_offset = U32(p + 42);
      if (at + 46 + n + x + c > cd.size()) {
        return Status::Invalid(path_ + ": zip central directory entry " + std::to_string(e) +
                               " runs past the directory");
      }
      std::string name(reinterpret_cast<const char*>(p + 46), n);
      // zip64 extended information: the 8-byte values of the fields that overflowed.
      for (size_t k = 0; k + 4 <= x;) {
        const uint8_t* f = p + 46 + n + k;
        const uint16_t id = U16(f), len = U16(f + 2);
        if (id == 0x0001) {
          size_t q = 4;
          auto take = [&](uint64_t& v) {
            if (v == 0xFFFFFFFF && q + 8 <= 4u + len) { v = U64(f + q); q += 8; }
          };
          take(m.uncompressed);
          take(m.compressed);
          take(m.header_offset);
        }
        k += 4 + len;
      }
      if (!name.empty() && name.back() != '/') members_[name] = m;  // last entry wins
      at += 46 + n + x + c;
    }
    // A zip of the store's folder (zip -r store.zarr.zip store.zarr) prefixes every key.
    auto has_root = [&](const std::string& pre) {
      for (const char* k : {"zarr.json", ".zgroup", ".zmetadata", ".zarray"}) {
        if (members_.count(pre + k)) return true;
      }
      return false;
    };
    if (!has_root("") && !members_.empty()) {
      const std::string first = members_.begin()->first;
      const size_t slash = first.find('/');
      if (slash != std::string::npos && has_root(first.substr(0, slash + 1))) {
        prefix_ = first.substr(0, slash + 1);
      }
    }
    if (!has_root(prefix_)) {
      return Status::Invalid(path_ + ": a zip file, but not a zarr store (no zarr.json, .zgroup "
                             "or .zmetadata at its root)");
    }
    if (!inner.empty()) {
      prefix_ += inner + "/";
      if (!has_root(prefix_)) {
        return Status::Invalid(path_ + ": the zip store " + zip_ + " has no group '" + inner +
                               "' (no zarr.json, .zgroup or .zmetadata under " + prefix_ + ")");
      }
    }
    return Status::OK();
  }

  std::map<std::string, Member> members_;
  std::string zip_;     // the zip file itself
  std::string prefix_;  // what every key of the store starts with inside the zip
};

}  // namespace

std::optional<InsideFile> SplitInsideFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 || errno != ENOTDIR) return std::nullopt;
  // ENOTDIR: some leading component is a file. The longest such prefix is the file.
  for (size_t slash = path.rfind('/'); slash != std::string::npos && slash > 0;
       slash = path.rfind('/', slash - 1)) {
    const std::string head = path.substr(0, slash);
    if (::stat(head.c_str(), &st) == 0) {
      if (!S_ISREG(st.st_mode)) return std::nullopt;
      std::string inner = path.substr(slash + 1);
      while (!inner.empty() && inner.back() == '/') inner.pop_back();
      if (inner.empty()) return std::nullopt;
      return InsideFile{head, inner};
    }
  }
  return std::nullopt;
}

Result<std::unique_ptr<Store>> Store::Open(const std::string& path) {
  // An object URL: a zip store read by range requests (a directory store needs listing).
  if (storage::ObjectUrl::IsUrl(path)) return ZipStore::Make(path, "");
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (auto in = SplitInsideFile(path)) return ZipStore::Make(in->file, in->inner);
    return Status::IOError(path + ": cannot open: " + std::strerror(err));
  }
  if (S_ISDIR(st.st_mode)) return DirectoryStore::Make(path);
  return ZipStore::Make(path, "");
}

Result<std::optional<std::string>> Store::Read(const std::string& key) {
  CF_ASSIGN_OR_RETURN(auto loc, Locate(key));
  if (!loc) return std::optional<std::string>();
  CF_ASSIGN_OR_RETURN(auto bytes, ReadLocation(*loc));
  return std::optional<std::string>(std::string(bytes.begin(), bytes.end()));
}

Result<std::vector<uint8_t>> Store::ReadLocation(const KeyLocation& loc) const {
  std::shared_ptr<const io::RandomAccessFile> f = main_;
  if (files_) {
    CF_ASSIGN_OR_RETURN(f, files_->Get(loc.file));
  }
  std::vector<uint8_t> bytes(loc.size);
  CF_RETURN_IF_ERROR(f->ReadAt(loc.offset, loc.size, bytes.data()));
  if (!loc.deflated) return bytes;
  std::vector<uint8_t> out;
  Status st = io::codec::InflateRaw(bytes, loc.decoded_size, out);
  if (!st.ok()) return Status::Invalid(path_ + ": zip member: " + st.message());
  if (out.size() != loc.decoded_size) {
    return Status::Invalid(path_ + ": zip member inflates to " + std::to_string(out.size()) +
                           " bytes, its directory entry says " + std::to_string(loc.decoded_size));
  }
  return out;
}

}  // namespace cellfeed::zarr
