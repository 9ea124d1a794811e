#include "io/file_set.h"

namespace cellfeed::io {

uint32_t FileSet::Add(std::string path) {
  paths_.push_back(std::move(path));
  return static_cast<uint32_t>(paths_.size() - 1);
}

Result<std::shared_ptr<const RandomAccessFile>> FileSet::Get(uint32_t i) const {
  if (i >= paths_.size()) return Status::Invalid("file index " + std::to_string(i) + " out of range");
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (open_.size() < paths_.size()) open_.resize(paths_.size());
    if (open_[i]) return open_[i];
  }
  CF_ASSIGN_OR_RETURN(std::shared_ptr<RandomAccessFile> f, RandomAccessFile::Open(paths_[i]));
  std::lock_guard<std::mutex> lock(mu_);
  if (open_[i]) return open_[i];  // another thread opened it meanwhile
  if (n_open_ < keep_open_) {
    open_[i] = f;
    ++n_open_;
  }
  return std::shared_ptr<const RandomAccessFile>(std::move(f));
}

}  // namespace cellfeed::io
