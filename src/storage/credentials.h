// Who signs a request, and where it goes: from an object URL and the StorageOptions,
// the endpoint URL of the object and its authentication, resolved the way the AWS CLI
// and SDKs do (explicit options, then AWS_* variables, then the shared credentials and
// config files' profile), so that the same environment works for cellfeed and boto3.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "cellfeed/status.h"
#include "storage/object_url.h"
#include "storage/sigv4.h"
#include "storage/storage_options.h"

namespace cellfeed::storage {

// Environment lookup, injectable so tests do not touch the process's environment.
using Environment = std::function<std::optional<std::string>(const std::string&)>;
Environment ProcessEnvironment();

enum class AuthKind { kNone, kSigV4, kBearer };

struct RequestTarget {
  std::string url;            // scheme://host[:port]/path, no query string (http: as given)
  std::string host;           // host[:port] as signed
  std::string canonical_uri;  // the path, as sent
  AuthKind auth = AuthKind::kNone;
  AwsCredentials credentials;  // kSigV4
  std::string region, service;  // kSigV4 scope
  std::string bearer_token;     // kBearer
  HeaderList extra_headers;     // requester pays
  std::string why_anonymous;    // kNone on s3/gs: why no credentials were used (for errors)
};

Result<RequestTarget> ResolveTarget(const ObjectUrl& url, const StorageOptions& options,
                                    const Environment& env);

// One profile's keys from an AWS shared file: `[name]` in credentials, `[profile name]`
// (or `[default]`) in config. Keys lower-cased, values trimmed; nullopt if no such section
// or no file.
std::optional<std::vector<std::pair<std::string, std::string>>> ReadAwsProfile(
    const std::string& path, const std::string& profile, bool config_file);

}  // namespace cellfeed::storage
