// AWS Signature Version 4 (header form), done here rather than by libcurl's
// CURLOPT_AWS_SIGV4, whose canonicalization had bugs (curl #9717, #11794) and which has no
// UNSIGNED-PAYLOAD. Checked against AWS's published test-suite vectors
// (tests/cpp/storage_test.cc). Used for S3 and for GCS's XML API with HMAC keys.
//
// The steps: a canonical request (method, URI, sorted encoded query, lower-cased sorted
// headers with trimmed values, the signed-header list, the payload hash), a string to sign
// (algorithm, time, scope, the canonical request's SHA-256), and an HMAC-SHA256 chain from
// "AWS4" + secret through date, region, service and "aws4_request".
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cellfeed::storage {

struct AwsCredentials {
  std::string access_key_id, secret_access_key, session_token;
  bool empty() const { return access_key_id.empty() || secret_access_key.empty(); }
};

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct SigV4Request {
  std::string method = "GET";
  std::string canonical_uri = "/";  // the path as sent: S3 key segments percent-encoded once
  HeaderList query;                 // decoded names and values, any order
  HeaderList headers;               // as sent; must include host
  std::string payload_hash;         // hex SHA-256 of the body, or "UNSIGNED-PAYLOAD"
};

struct SigV4Signature {
  std::string canonical_request, string_to_sign, authorization;
};

// Signs `request` at `amz_date` ("YYYYMMDDTHHMMSSZ") and appends to its headers what the
// signature covers and needs: x-amz-date, x-amz-security-token (a session's), and
// Authorization. The secret appears in no returned string.
SigV4Signature SignV4(SigV4Request& request, const AwsCredentials& credentials,
                      const std::string& region, const std::string& service,
                      const std::string& amz_date);

// "YYYYMMDDTHHMMSSZ" in UTC.
std::string AmzDate(std::chrono::system_clock::time_point t);
std::string Sha256Hex(std::string_view data);
inline constexpr const char* kEmptyPayloadSha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

}  // namespace cellfeed::storage
