// Where an object lives: s3://bucket/key, gs://bucket/key, or an http(s) URL (a
// presigned URL, a public file, a test server). Parsing only; no I/O and no credentials.
#pragma once

#include <string>

#include "cellfeed/status.h"

namespace cellfeed::storage {

enum class UrlScheme { kS3, kGcs, kHttp };

struct ObjectUrl {
  UrlScheme scheme = UrlScheme::kHttp;
  std::string bucket, key;  // s3:// and gs:// only (key without its leading '/')
  std::string http_url;     // http(s):// only: the URL as given, query string included

  // Whether `path` names an object rather than a local file (a scheme this layer reads).
  static bool IsUrl(const std::string& path);
  static Result<ObjectUrl> Parse(const std::string& url);

  // The URL for messages: never a query string (a presigned URL carries its signature
  // there) nor user:password@.
  std::string Redacted() const;
};

// RFC 3986 percent-encoding of everything but A-Z a-z 0-9 - . _ ~ (and '/' when
// `keep_slash`): SigV4's UriEncode, and how an object key goes into a request path.
std::string UriEncode(const std::string& s, bool keep_slash);

}  // namespace cellfeed::storage
