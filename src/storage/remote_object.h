// One object in S3, GCS or behind an http(s) URL, read by byte ranges.
//
// Open() sends one ranged GET (bytes=0-0) to learn the size and the version (ETag; GCS's
// generation; Last-Modified where a server sends no ETag): a HEAD is refused by presigned
// URLs, which are signed for GET. Every later GET carries If-Match on that ETag and its
// answer is checked: 206, a Content-Range that says exactly the bytes asked and the size
// known at open, a body of exactly that length, the same version. So a changed object is an
// error naming the URL, and a short, long or whole-object answer is never taken for the
// range.
//
// ReadRanges merges nearby ranges (storage/byte_ranges.h) and runs the requests on libcurl's
// multi interface in the calling thread: many in flight over a shared connection pool, one
// thread. A failed request is retried (exponential backoff with full jitter, Retry-After
// honoured, on a fresh connection) when the failure can pass: connection errors, resets,
// timeouts and stalls (low-speed limit), truncated bodies, 408/429/5xx. 429 and 503 also
// halve the requests in flight, which then grow back by one per success. Anything else (403,
// 404, 412, a changed object), or exhausted attempts or time, fails the read with a message
// naming the URL (without query string or credentials), the range, the last HTTP status
// and the attempts. Nothing waits without a bound: connect, low-speed and whole-request
// limits, and the retry budget.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "cellfeed/status.h"
#include "storage/byte_ranges.h"
#include "storage/credentials.h"
#include "storage/object_url.h"
#include "storage/storage_options.h"

namespace cellfeed::storage {

struct TransferStats {
  uint64_t requests = 0;  // HTTP requests sent, retries and the open included
  uint64_t retries = 0;
  uint64_t bytes = 0;     // body bytes received into ranges
};

class RemoteObject {
 public:
  static Result<std::shared_ptr<RemoteObject>> Open(const std::string& url,
                                                    const StorageOptions& options);
  static Result<std::shared_ptr<RemoteObject>> Open(const std::string& url,
                                                    const StorageOptions& options,
                                                    const Environment& env);
  ~RemoteObject();
  RemoteObject(const RemoteObject&) = delete;
  RemoteObject& operator=(const RemoteObject&) = delete;

  // Reads ranges[i] into outs[i] (ranges[i].size bytes each). All succeed or the first
  // permanent failure is returned. Calls from several threads take turns.
  Status ReadRanges(std::span<const ByteRange> ranges, std::span<void* const> outs);
  Status ReadAt(uint64_t offset, uint64_t size, void* out);

  uint64_t size() const { return size_; }
  const std::string& etag() const { return etag_; }  // empty where the server sends none
  const std::string& url() const { return display_url_; }  // safe for messages
  TransferStats stats() const;

  struct Impl;  // libcurl state and the transfer loop (remote_object.cc)

 private:
  RemoteObject() = default;
  // `opening`: first the bytes=0-0 request that learns the size and version.
  Status Fetch(std::span<const ByteRange> ranges, std::span<void* const> outs, bool opening);
  std::string display_url_;
  RequestTarget target_;
  StorageOptions options_;
  uint64_t size_ = 0;
  std::string etag_, generation_, last_modified_;
  std::unique_ptr<Impl> impl_;
  std::mutex mu_;  // one ReadRanges at a time on the multi handle
};

}  // namespace cellfeed::storage
