// The only place cellfeed calls libhdf5. It is used at open time for metadata
// (attributes, dtypes, filter pipelines, chunk tables) and for variable-length strings;
// bulk numeric reads go through ArrayReader (pread + our own decoders) instead.
// libhdf5 serializes all calls internally; we add our own lock so this holds for
// non-thread-safe builds too.
#pragma once

#include <hdf5.h>

#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cellfeed/status.h"
#include "io/file.h"
#include "io/hdf5/dataset_layout.h"
#include "io/hdf5/isolation.h"

namespace cellfeed::io {

std::recursive_mutex& Hdf5Mutex();

// Called with each element (and attribute) just before libhdf5 reads it. Set only by the
// open probe (tools/probe/), which reports it to its parent so that a crash or hang in
// libhdf5 can be blamed on the element being read; null (no cost) everywhere else.
using Hdf5TraceFn = void (*)(const std::string& element, const std::string& attribute);
void SetHdf5Trace(Hdf5TraceFn fn);

enum class NodeKind { kMissing, kGroup, kDataset, kOther };

class H5File {
 public:
  static Result<std::shared_ptr<H5File>> Open(const std::string& path);
  ~H5File();
  H5File(const H5File&) = delete;
  H5File& operator=(const H5File&) = delete;

  const std::string& path() const { return path_; }
  // IOError naming the file if it was truncated or rewritten since it was opened (size or
  // modification time changed). String reads check it: they go through libhdf5, whose
  // metadata would no longer be true.
  Status CheckUnchanged() const;
  // st_dev / st_ino of the file libhdf5 opened (0 when unknown): lets AnnDataFile check
  // that its pread descriptor refers to the same file.
  uint64_t device() const { return identity_.device; }
  uint64_t inode() const { return identity_.inode; }
  uint64_t size_at_open() const { return identity_.size; }
  NodeKind Kind(const std::string& node) const;
  Result<std::vector<std::string>> Children(const std::string& group) const;

  bool HasAttribute(const std::string& node, const std::string& attr) const;
  // Scalar string attribute (also a 1-element string array).
  Result<std::string> StringAttribute(const std::string& node, const std::string& attr) const;
  Result<std::vector<std::string>> StringListAttribute(const std::string& node,
                                                       const std::string& attr) const;
  Result<std::vector<int64_t>> IntListAttribute(const std::string& node,
                                                const std::string& attr) const;
  Result<bool> BoolAttribute(const std::string& node, const std::string& attr) const;
  // The path of the object an object-reference attribute points to (anndata 0.7 stores a
  // categorical column's categories as a reference to obs/__categories/<col>).
  Result<std::string> ReferenceAttribute(const std::string& node, const std::string& attr) const;
  // The fields of a 1-D compound dataset (anndata < 0.7 obs/var), read whole: numeric and
  // bool fields as their own dtype, string fields as strings. Fields that are neither
  // (arrays, nested compounds) are refused, naming the field.
  struct CompoundField {
    std::string name;
    bool is_string = false;
    DType dtype = DType::kFloat64;
    std::vector<uint8_t> values;  // numeric / bool fields
    std::vector<std::string> strings;  // string fields
  };
  Result<std::vector<CompoundField>> ReadCompound(const std::string& dataset) const;
  bool IsCompoundDataset(const std::string& dataset) const;

  Result<DatasetLayout> Describe(const std::string& dataset) const;
  bool IsStringDataset(const std::string& dataset) const;
  Result<int64_t> Length(const std::string& dataset) const;  // extent of dim 0, any dtype
  // Whole small numeric dataset (categories), converted to `as`.
  Result<std::vector<uint8_t>> ReadSmallNumeric(const std::string& dataset, DType as) const;
  // Strings of a 1-D string dataset: all, or the elements [begin, end).
  Result<std::vector<std::string>> ReadStrings(const std::string& dataset,
                                               std::optional<std::pair<int64_t, int64_t>>
                                                   range = std::nullopt) const;
  // From now on, the first read of each string dataset is first done whole by a probe
  // process (see isolation.h): a global heap that crashes or hangs libhdf5 then costs an
  // error naming the dataset, not this process.
  void IsolateStringReads(const IsolationLimits& limits);

 private:
  H5File(std::string path, hid_t id, uint64_t userblock)
      : path_(std::move(path)), id_(id), userblock_(userblock) {}
  std::string path_;
  hid_t id_;
  uint64_t userblock_;
  int fd_ = -1;  // libhdf5's own descriptor (sec2 driver), not owned
  FileIdentity identity_;
  std::optional<IsolationLimits> isolation_;
  mutable std::mutex probed_mu_;
  mutable std::set<std::string> probed_;  // string datasets a probe has read whole
};

}  // namespace cellfeed::io
