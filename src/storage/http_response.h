// The parts of an HTTP answer that a range read checks: status, headers (names lower-
// cased), Content-Range, Retry-After, and the error code in an S3/GCS XML error body.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cellfeed::storage {

struct ResponseHead {
  long status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  // One header line as libcurl delivers it; a status line starts a new answer (after a
  // 100 Continue, or a redirect we do not follow).
  void AddLine(std::string_view line);
  std::string Header(const std::string& lower_name) const;  // "" when absent
  std::optional<uint64_t> ContentLength() const;
};

// "bytes FIRST-LAST/TOTAL", "bytes FIRST-LAST/*" (total unknown) or "bytes */TOTAL" (an
// unsatisfiable range's answer: `satisfied` false). nullopt when malformed.
struct ContentRange {
  bool satisfied = true;
  uint64_t first = 0, last = 0;
  std::optional<uint64_t> total;
};
std::optional<ContentRange> ParseContentRange(const std::string& value);

// Retry-After: delta-seconds or an HTTP-date; seconds from now (>= 0), nullopt if absent
// or unreadable.
std::optional<double> ParseRetryAfter(const std::string& value);

// <Code>SlowDown</Code> from an S3 or GCS XML error body; "" if none.
std::string S3ErrorCode(const std::string& body);

}  // namespace cellfeed::storage
