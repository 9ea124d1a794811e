#include "storage/object_url.h"

namespace cellfeed::storage {

namespace {

bool StartsWith(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// Drops "user:password@" and everything from '?' or '#' on.
std::string RedactHttp(const std::string& url) {
  std::string out = url.substr(0, url.find_first_of("?#"));
  size_t scheme_end = out.find("://");
  size_t host_start = scheme_end == std::string::npos ? 0 : scheme_end + 3;
  size_t path_start = out.find('/', host_start);
  size_t at = out.rfind('@', path_start == std::string::npos ? out.size() : path_start);
  if (at != std::string::npos && at >= host_start) out.erase(host_start, at + 1 - host_start);
  return out;
}

}  // namespace

bool ObjectUrl::IsUrl(const std::string& path) {
  return StartsWith(path, "s3://") || StartsWith(path, "gs://") ||
         StartsWith(path, "http://") || StartsWith(path, "https://");
}

Result<ObjectUrl> ObjectUrl::Parse(const std::string& url) {
  ObjectUrl out;
  if (StartsWith(url, "http://") || StartsWith(url, "https://")) {
    size_t host_start = url.find("://") + 3;
    size_t host_end = url.find_first_of("/?#", host_start);
    if (host_end == host_start || host_start >= url.size())
      return Status::Invalid(RedactHttp(url) + ": a URL needs a host");
    out.scheme = UrlScheme::kHttp;
    out.http_url = url;
    return out;
  }
  bool s3 = StartsWith(url, "s3://"), gs = StartsWith(url, "gs://");
  if (!s3 && !gs)
    return Status::Invalid(RedactHttp(url) +
                           ": not an object URL (expected s3://, gs://, https:// or http://)");
  std::string rest = url.substr(5);
  size_t slash = rest.find('/');
  out.scheme = s3 ? UrlScheme::kS3 : UrlScheme::kGcs;
  out.bucket = rest.substr(0, slash);
  out.key = slash == std::string::npos ? "" : rest.substr(slash + 1);
  if (out.bucket.empty())
    return Status::Invalid(url + ": the URL names no bucket (expected " +
                           (s3 ? "s3" : "gs") + "://bucket/key)");
  if (out.key.empty())
    return Status::Invalid(url + ": the URL names a bucket but no object (expected " +
                           (s3 ? "s3" : "gs") + "://bucket/key)");
  if (out.bucket.find_first_of("?#@ ") != std::string::npos)
    return Status::Invalid(url + ": '" + out.bucket + "' is not a bucket name");
  return out;
}

std::string ObjectUrl::Redacted() const {
  switch (scheme) {
    case UrlScheme::kS3: return "s3://" + bucket + "/" + key;
    case UrlScheme::kGcs: return "gs://" + bucket + "/" + key;
    case UrlScheme::kHttp: return RedactHttp(http_url);
  }
  return {};
}

std::string UriEncode(const std::string& s, bool keep_slash) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                      (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace cellfeed::storage
