#include "storage/http_response.h"

#include <curl/curl.h>

#include <charconv>
#include <ctime>

namespace cellfeed::storage {

namespace {

std::string Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string_view::npos ? "" : std::string(s.substr(b, e - b + 1));
}

std::optional<uint64_t> ToU64(std::string_view s) {
  uint64_t v = 0;
  if (s.empty()) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

void ResponseHead::AddLine(std::string_view line) {
  if (line.rfind("HTTP/", 0) == 0) {
    *this = ResponseHead();
    size_t sp = line.find(' ');
    if (sp != std::string_view::npos) {
      std::string code = Trim(line.substr(sp + 1, 4));
      status = static_cast<long>(ToU64(code).value_or(0));
    }
    return;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return;
  std::string name = Trim(line.substr(0, colon));
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  headers.emplace_back(std::move(name), Trim(line.substr(colon + 1)));
}

std::string ResponseHead::Header(const std::string& lower_name) const {
  for (const auto& [name, value] : headers)
    if (name == lower_name) return value;
  return "";
}

std::optional<uint64_t> ResponseHead::ContentLength() const {
  return ToU64(Header("content-length"));
}

std::optional<ContentRange> ParseContentRange(const std::string& value) {
  std::string_view v(value);
  if (v.rfind("bytes ", 0) != 0) return std::nullopt;
  v.remove_prefix(6);
  size_t slash = v.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  std::string_view span = v.substr(0, slash), total = v.substr(slash + 1);
  ContentRange out;
  if (total != "*") {
    out.total = ToU64(total);
    if (!out.total) return std::nullopt;
  }
  if (span == "*") {
    if (!out.total) return std::nullopt;
    out.satisfied = false;
    return out;
  }
  size_t dash = span.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  auto first = ToU64(span.substr(0, dash)), last = ToU64(span.substr(dash + 1));
  if (!first || !last || *last < *first) return std::nullopt;
  if (out.total && *last >= *out.total) return std::nullopt;
  out.first = *first;
  out.last = *last;
  return out;
}

std::optional<double> ParseRetryAfter(const std::string& value) {
  std::string v = Trim(value);
  if (v.empty()) return std::nullopt;
  if (auto secs = ToU64(v)) return static_cast<double>(*secs);
  time_t when = curl_getdate(v.c_str(), nullptr);
  if (when == -1) return std::nullopt;
  double d = std::difftime(when, std::time(nullptr));
  return d < 0 ? 0.0 : d;
}

std::string S3ErrorCode(const std::string& body) {
  size_t b = body.find("<Code>");
  if (b == std::string::npos) return "";
  b += 6;
  size_t e = body.find("</Code>", b);
  if (e == std::string::npos || e - b > 64) return "";
  return body.substr(b, e - b);
}

}  // namespace cellfeed::storage
