// A bounded LRU cache of decoded chunks, shared by all threads of a collection.
// Used for small, hot arrays (indptr): every fetch needs indptr entries scattered over
// the whole file, and re-decoding the same gzip chunks per fetch is pure waste; unfiltered
// chunks are kept in pages (`page` >= 0), so a fetch of random rows costs lookups, not a
// pread per row. Large arrays (data, indices) are not cached: random blocks rarely
// revisit a chunk.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

namespace cellfeed::io {

struct DatasetLayout;

class ChunkCache {
 public:
  using Bytes = std::shared_ptr<const std::vector<uint8_t>>;
  explicit ChunkCache(size_t budget_bytes) : budget_(budget_bytes) {}

  // `page` -1: the whole decoded chunk; >= 0: that page of an unfiltered chunk.
  Bytes Find(const DatasetLayout* array, int64_t chunk, int64_t page = -1) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find({array, chunk, page});
    if (it == index_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second);  // most recently used first
    return it->second->second;
  }

  void Insert(const DatasetLayout* array, int64_t chunk, Bytes bytes) {
    Insert(array, chunk, -1, std::move(bytes));
  }
  void Insert(const DatasetLayout* array, int64_t chunk, int64_t page, Bytes bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    const Key key{array, chunk, page};
    if (index_.count(key) || bytes->size() > budget_) return;
    used_ += bytes->size();
    lru_.emplace_front(key, std::move(bytes));
    index_[key] = lru_.begin();
    while (used_ > budget_) {
      used_ -= lru_.back().second->size();
      index_.erase(lru_.back().first);
      lru_.pop_back();
    }
  }

 private:
  struct Key {
    const DatasetLayout* array;
    int64_t chunk, page;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const {
      return (std::hash<const void*>()(k.array) * 31 + std::hash<int64_t>()(k.chunk)) * 31 +
             std::hash<int64_t>()(k.page);
    }
  };
  const size_t budget_;
  size_t used_ = 0;
  std::mutex mu_;
  std::list<std::pair<Key, Bytes>> lru_;
  std::unordered_map<Key, std::list<std::pair<Key, Bytes>>::iterator, KeyHash> index_;
};

}  // namespace cellfeed::io
