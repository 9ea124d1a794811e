#include "storage/credentials.h"

#include <cstdlib>
#include <fstream>

namespace cellfeed::storage {

namespace {

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Get(const Environment& env, const std::string& name) {
  auto v = env(name);
  return v ? *v : "";
}

std::string Lookup(const std::vector<std::pair<std::string, std::string>>& kv,
                   const std::string& key) {
  for (const auto& [k, v] : kv)
    if (k == key) return v;
  return "";
}

// http://host:port/path -> ("host:port", "/path"); the scheme kept apart.
Status SplitUrl(const std::string& url, std::string& host, std::string& path) {
  size_t start = url.find("://");
  if (start == std::string::npos) return Status::Invalid("'" + url + "' is not a URL");
  start += 3;
  size_t end = url.find_first_of("/?#", start);
  host = url.substr(start, end == std::string::npos ? std::string::npos : end - start);
  size_t at = host.rfind('@');
  if (at != std::string::npos) host = host.substr(at + 1);
  path = end == std::string::npos || url[end] != '/' ? "/" : url.substr(end);
  path = path.substr(0, path.find_first_of("?#"));
  if (host.empty()) return Status::Invalid("'" + url + "' names no host");
  return Status::OK();
}

std::string HomeFile(const Environment& env, const char* override_var, const char* name) {
  std::string path = Get(env, override_var);
  if (!path.empty()) return path;
  std::string home = Get(env, "HOME");
  return home.empty() ? "" : home + "/.aws/" + name;
}

bool Truthy(const std::string& v) {
  std::string l = Lower(v);
  return l == "1" || l == "true" || l == "yes";
}

}  // namespace

Environment ProcessEnvironment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

std::optional<std::vector<std::pair<std::string, std::string>>> ReadAwsProfile(
    const std::string& path, const std::string& profile, bool config_file) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string want = config_file && profile != "default" ? "profile " + profile : profile;
  std::vector<std::pair<std::string, std::string>> out;
  bool found = false, inside = false;
  std::string line;
  while (std::getline(in, line)) {
    std::string t = Trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t.front() == '[' && t.back() == ']') {
      // "[profile  name]" and "[ name ]" are the same section to the AWS CLI.
      std::string section = Trim(t.substr(1, t.size() - 2));
      if (section.rfind("profile", 0) == 0 && section.size() > 7 &&
          (section[7] == ' ' || section[7] == '\t'))
        section = "profile " + Trim(section.substr(7));
      inside = section == want;
      found = found || inside;
      continue;
    }
    if (!inside) continue;
    size_t eq = t.find('=');
    if (eq == std::string::npos) continue;  // a nested-section line ("s3 =" block) or junk
    out.emplace_back(Lower(Trim(t.substr(0, eq))), Trim(t.substr(eq + 1)));
  }
  if (!found) return std::nullopt;
  return out;
}

Result<RequestTarget> ResolveTarget(const ObjectUrl& url, const StorageOptions& options,
                                    const Environment& env) {
  RequestTarget t;
  if (url.scheme == UrlScheme::kHttp) {
    t.url = url.http_url;
    CF_RETURN_IF_ERROR(SplitUrl(url.http_url, t.host, t.canonical_uri));
    if (!options.bearer_token.empty()) {
      t.auth = AuthKind::kBearer;
      t.bearer_token = options.bearer_token;
    }
    return t;
  }
  std::string key_path = "/" + UriEncode(url.key, /*keep_slash=*/true);

  if (url.scheme == UrlScheme::kGcs) {
    std::string endpoint = options.endpoint_url;
    if (endpoint.empty()) {
      endpoint = Get(env, "STORAGE_EMULATOR_HOST");
      if (!endpoint.empty() && endpoint.find("://") == std::string::npos)
        endpoint = "http://" + endpoint;
    }
    if (endpoint.empty()) endpoint = "https://storage.googleapis.com";
    while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
    t.url = endpoint + "/" + url.bucket + key_path;
    CF_RETURN_IF_ERROR(SplitUrl(t.url, t.host, t.canonical_uri).WithContext(url.Redacted()));
    if (!options.user_project.empty())
      t.extra_headers.emplace_back("x-goog-user-project", options.user_project);
    std::string token =
        options.bearer_token.empty() ? Get(env, "GOOGLE_OAUTH_ACCESS_TOKEN") : options.bearer_token;
    if (options.anonymous) {
      t.why_anonymous = "anonymous access was asked for";
    } else if (!options.access_key_id.empty() && !options.secret_access_key.empty()) {
      // GCS's XML API accepts SigV4 signed with HMAC keys (region "auto", service "s3").
      t.auth = AuthKind::kSigV4;
      t.credentials = {options.access_key_id, options.secret_access_key, ""};
      t.region = options.region.empty() ? "auto" : options.region;
      t.service = "s3";
    } else if (!token.empty()) {
      t.auth = AuthKind::kBearer;
      t.bearer_token = token;
    } else {
      t.why_anonymous = "no GCS credentials were given (HMAC keys or an OAuth token)";
    }
    return t;
  }

  // S3: the profile's files are read only when something is still missing.
  std::string profile = options.profile;
  if (profile.empty()) profile = Get(env, "AWS_PROFILE");
  if (profile.empty()) profile = Get(env, "AWS_DEFAULT_PROFILE");
  // As in botocore: only a profile named in the options hides AWS_ACCESS_KEY_ID.
  bool profile_named = !options.profile.empty();
  if (profile.empty()) profile = "default";
  std::string credentials_file = HomeFile(env, "AWS_SHARED_CREDENTIALS_FILE", "credentials");
  std::string config_file = HomeFile(env, "AWS_CONFIG_FILE", "config");
  auto from_credentials = credentials_file.empty()
                              ? std::nullopt
                              : ReadAwsProfile(credentials_file, profile, false);
  auto from_config =
      config_file.empty() ? std::nullopt : ReadAwsProfile(config_file, profile, true);
  if (!options.profile.empty() && !from_credentials && !from_config)
    return Status::Invalid(url.Redacted() + ": AWS profile '" + profile + "' is in neither " +
                           credentials_file + " nor " + config_file);
  auto profile_value = [&](const std::string& key) {
    std::string v = from_credentials ? Lookup(*from_credentials, key) : "";
    if (v.empty() && from_config) v = Lookup(*from_config, key);
    return v;
  };

  t.region = options.region;
  if (t.region.empty()) t.region = Get(env, "AWS_REGION");
  if (t.region.empty()) t.region = Get(env, "AWS_DEFAULT_REGION");
  if (t.region.empty()) t.region = profile_value("region");
  if (t.region.empty()) t.region = "us-east-1";
  t.service = "s3";

  std::string endpoint = options.endpoint_url;
  if (endpoint.empty()) endpoint = Get(env, "AWS_ENDPOINT_URL_S3");
  if (endpoint.empty()) endpoint = Get(env, "AWS_ENDPOINT_URL");
  if (endpoint.empty()) endpoint = profile_value("endpoint_url");
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  if (!endpoint.empty()) {
    t.url = endpoint + "/" + url.bucket + key_path;  // path style: MinIO, moto, Ceph, R2
  } else if (url.bucket.find('.') == std::string::npos) {
    t.url = "https://" + url.bucket + ".s3." + t.region + ".amazonaws.com" + key_path;
  } else {  // a dotted bucket does not match the wildcard certificate
    t.url = "https://s3." + t.region + ".amazonaws.com/" + url.bucket + key_path;
  }
  CF_RETURN_IF_ERROR(SplitUrl(t.url, t.host, t.canonical_uri).WithContext(url.Redacted()));
  if (options.requester_pays) t.extra_headers.emplace_back("x-amz-request-payer", "requester");

  if (options.anonymous || Truthy(Get(env, "AWS_NO_SIGN_REQUEST"))) {
    t.why_anonymous = "anonymous access was asked for";
    return t;
  }
  AwsCredentials c{options.access_key_id, options.secret_access_key, options.session_token};
  if (c.empty() && !profile_named) {
    c = {Get(env, "AWS_ACCESS_KEY_ID"), Get(env, "AWS_SECRET_ACCESS_KEY"),
         Get(env, "AWS_SESSION_TOKEN")};
  }
  if (c.empty()) {
    c = {profile_value("aws_access_key_id"), profile_value("aws_secret_access_key"),
         profile_value("aws_session_token")};
  }
  if (c.empty()) {
    t.why_anonymous = "no AWS credentials were found (options, AWS_ACCESS_KEY_ID, profile '" +
                      profile + "'), so the request was unsigned";
    return t;
  }
  t.auth = AuthKind::kSigV4;
  t.credentials = std::move(c);
  return t;
}

}  // namespace cellfeed::storage
