// What a reader of remote objects is told: credentials and endpoint overrides (each
// defaulting to the environment and the AWS shared files, storage/credentials.h), and
// how it transfers (requests in flight, merging of nearby ranges, retries, time limits).
#pragma once

#include <cstdint>
#include <string>

namespace cellfeed::storage {

// Bounded retries with exponential backoff and full jitter: attempt n (from 1) waits a
// uniform draw from [0, min(max_backoff, initial_backoff * 2^(n-1))], or what a
// Retry-After header asks when that is longer; a range gives up after max_attempts or
// once max_elapsed_s has passed since its first attempt, whichever comes first.
struct RetryPolicy {
  int max_attempts = 10;
  double initial_backoff_s = 0.1;
  double max_backoff_s = 20.0;
  double max_elapsed_s = 300.0;
  double max_retry_after_s = 60.0;  // a longer Retry-After fails the read instead of waiting
};

struct StorageOptions {
  // --- who we are (empty: from the environment; storage/credentials.h) ---
  bool anonymous = false;  // send unsigned requests even where credentials exist
  std::string profile;     // AWS shared-file profile (default AWS_PROFILE, then "default")
  std::string region;      // S3 region (default AWS_REGION, AWS_DEFAULT_REGION, profile, us-east-1)
  std::string endpoint_url;  // S3/GCS endpoint (default AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL,
                             // profile endpoint_url; GCS: STORAGE_EMULATOR_HOST)
  std::string access_key_id, secret_access_key, session_token;  // S3 keys, or GCS HMAC keys
  std::string bearer_token;  // GCS OAuth 2.0 access token (default GOOGLE_OAUTH_ACCESS_TOKEN)
  bool requester_pays = false;   // S3: x-amz-request-payer: requester
  std::string user_project;      // GCS requester pays: the project billed (x-goog-user-project)

  // --- how bytes move ---
  int max_in_flight = 16;                 // concurrent range requests per read
  uint64_t coalesce_hole = 1 << 20;       // ranges this close are fetched by one request ...
  uint64_t max_request = 16 << 20;        // ... while that request stays this small
  double connect_timeout_s = 10.0;
  double low_speed_time_s = 15.0;         // a request slower than low_speed_bytes/s for
  long low_speed_bytes = 1024;            // this long is abandoned and sent again
  double request_timeout_s = 300.0;       // any single request, start to end
  std::string ca_bundle;                  // CA file for https (default: libcurl's)
  RetryPolicy retry;
};

}  // namespace cellfeed::storage
