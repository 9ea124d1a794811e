// Status and Result<T>: how every fallible cellfeed call reports failure.
// No exceptions cross the C++ API; the Python bindings turn a Status into
// ValueError (malformed or unsupported content), OSError (I/O) or IndexError.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace cellfeed {

enum class StatusCode {
  kOk = 0,
  kInvalid,      // malformed content: bad shape, indptr, codes, checksum, ...
  kUnsupported,  // a valid file using an encoding/dtype/filter we do not read
  kIOError,      // open/pread failed, file truncated or changed
  kOutOfRange,   // a caller's index is outside the collection
  kCancelled,    // the consumer stopped the pipeline
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status OK() { return {}; }
  static Status Invalid(std::string m) { return {StatusCode::kInvalid, std::move(m)}; }
  static Status Unsupported(std::string m) { return {StatusCode::kUnsupported, std::move(m)}; }
  static Status IOError(std::string m) { return {StatusCode::kIOError, std::move(m)}; }
  static Status OutOfRange(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
  static Status Cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Prefixes context ("file.h5ad: X/indices: ") so the user can act on the error.
  Status WithContext(const std::string& context) const {
    if (ok()) return *this;
    return {code_, context + ": " + message_};
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT
  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T& operator*() & { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace cellfeed

#define CF_CONCAT_INNER(a, b) a##b
#define CF_CONCAT(a, b) CF_CONCAT_INNER(a, b)

#define CF_RETURN_IF_ERROR(expr)               \
  do {                                         \
    ::cellfeed::Status _cf_st = (expr);        \
    if (!_cf_st.ok()) return _cf_st;           \
  } while (0)

#define CF_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()

#define CF_ASSIGN_OR_RETURN(lhs, expr) \
  CF_ASSIGN_OR_RETURN_IMPL(CF_CONCAT(_cf_result_, __LINE__), lhs, expr)
