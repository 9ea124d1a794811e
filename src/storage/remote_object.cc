#include "storage/remote_object.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "storage/http_response.h"
#include "storage/sigv4.h"

namespace cellfeed::storage {

namespace {

using Clock = std::chrono::steady_clock;

std::string RangeText(const ByteRange& r) {
  if (r.size == 0) return "bytes " + std::to_string(r.offset) + "-(empty)";
  return "bytes " + std::to_string(r.offset) + "-" + std::to_string(r.end() - 1);
}

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void CurlGlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// One asked request (a merged range) and the state of its current attempt.
struct Job {
  ByteRange range;
  char* dest = nullptr;          // range.size bytes
  bool probe = false;            // the open's bytes=0-0: learns size and version
  bool whole_object = false;     // the range is the whole object: a 200 answers it too
  int attempt = 0;
  int whole_object_answers = 0;  // 200s to a Range request seen so far
  Clock::time_point first_start;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  char errbuf[CURL_ERROR_SIZE] = {};
  ResponseHead head;
  uint64_t received = 0;
  bool body_refused = false;  // our write callback stopped the body (see `refusal`)
  std::string refusal, error_body;
};

}  // namespace

struct RemoteObject::Impl {
  CURLM* multi = nullptr;
  int in_flight_limit = 1;  // adapts under throttling (AIMD)
  uint64_t jitter_state = 0;
  std::atomic<uint64_t> requests{0}, retries{0}, bytes{0};
  ~Impl() {
    if (multi != nullptr) curl_multi_cleanup(multi);
  }
};

namespace {

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* job = static_cast<Job*>(user);
  job->head.AddLine(std::string_view(data, size * n));
  return size * n;
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* job = static_cast<Job*>(user);
  size_t len = size * n;
  long status = 0;
  curl_easy_getinfo(job->easy, CURLINFO_RESPONSE_CODE, &status);
  if (status >= 300 || status < 200) {  // an error's body: keep its start for the message
    size_t keep = std::min(len, size_t{4096} - std::min(size_t{4096}, job->error_body.size()));
    job->error_body.append(data, keep);
    return len;
  }
  if (status != 206 && !(status == 200 && job->whole_object)) {
    job->body_refused = true;
    job->refusal = "answered " + std::to_string(status) +
                   " (the whole object) to a Range request";
    return 0;  // not bytes of our range: stop the transfer
  }
  if (job->probe) {  // bytes=0-0: the byte itself is not needed
    job->received += len;
    return len;
  }
  if (job->received + len > job->range.size) {
    job->body_refused = true;
    job->refusal = "sent more bytes than the range holds";
    return 0;
  }
  std::memcpy(job->dest + job->received, data, len);
  job->received += len;
  return len;
}

}  // namespace

Result<std::shared_ptr<RemoteObject>> RemoteObject::Open(const std::string& url,
                                                         const StorageOptions& options) {
  return Open(url, options, ProcessEnvironment());
}

Result<std::shared_ptr<RemoteObject>> RemoteObject::Open(const std::string& url,
                                                         const StorageOptions& options,
                                                         const Environment& env) {
  CurlGlobalInit();
  CF_ASSIGN_OR_RETURN_IMPL(_parsed, ObjectUrl parsed, ObjectUrl::Parse(url));
  std::shared_ptr<RemoteObject> obj(new RemoteObject());
  obj->display_url_ = parsed.Redacted();
  CF_ASSIGN_OR_RETURN_IMPL(_target, obj->target_, ResolveTarget(parsed, options, env));
  obj->options_ = options;
  if (obj->options_.max_in_flight < 1) obj->options_.max_in_flight = 1;
  if (obj->options_.retry.max_attempts < 1) obj->options_.retry.max_attempts = 1;
  obj->impl_ = std::make_unique<Impl>();
  obj->impl_->multi = curl_multi_init();
  if (obj->impl_->multi == nullptr)
    return Status::IOError(obj->display_url_ + ": libcurl could not start");
  obj->impl_->in_flight_limit = obj->options_.max_in_flight;
  obj->impl_->jitter_state = std::hash<std::string>{}(obj->display_url_);

  // The open: bytes=0-0 through the same checked, retried path as every read.
  Status st = obj->Fetch(std::span<const ByteRange>(), std::span<void* const>(), true);
  if (!st.ok()) return st;
  return obj;
}

RemoteObject::~RemoteObject() = default;

TransferStats RemoteObject::stats() const {
  return {impl_->requests.load(), impl_->retries.load(), impl_->bytes.load()};
}

Status RemoteObject::ReadAt(uint64_t offset, uint64_t size, void* out) {
  ByteRange r{offset, size};
  void* outs[1] = {out};
  return ReadRanges(std::span<const ByteRange>(&r, 1), std::span<void* const>(outs, 1));
}

Status RemoteObject::ReadRanges(std::span<const ByteRange> ranges, std::span<void* const> outs) {
  return Fetch(ranges, outs, /*opening=*/false);
}

Status RemoteObject::Fetch(std::span<const ByteRange> ranges, std::span<void* const> outs,
                           bool opening) {
  std::lock_guard<std::mutex> lock(mu_);
  if (ranges.size() != outs.size())
    return Status::Invalid(display_url_ + ": " + std::to_string(ranges.size()) + " ranges but " +
                           std::to_string(outs.size()) + " buffers");
  for (const ByteRange& r : ranges) {
    if (r.offset > size_ || r.size > size_ - r.offset)
      return Status::OutOfRange(display_url_ + ": " + RangeText(r) + " is beyond the object's " +
                                std::to_string(size_) + " bytes");
  }

  // What to fetch: merged ranges, each into one buffer (a scratch one when it serves
  // several asked ranges or a hole; the asked buffer itself when it is exactly one range).
  std::vector<CoalescedRange> plan =
      CoalesceRanges(ranges, options_.coalesce_hole, options_.max_request);
  std::vector<std::vector<char>> scratch(plan.size());
  std::deque<Job> jobs;  // stable addresses: libcurl holds pointers to them
  if (opening) {
    jobs.emplace_back();
    jobs.back().range = {0, 1};
    jobs.back().probe = true;
  }
  for (size_t i = 0; i < plan.size(); ++i) {
    Job& job = jobs.emplace_back();
    job.range = plan[i].range;
    job.whole_object = job.range.offset == 0 && job.range.size == size_;
    const ByteRange& first = ranges[plan[i].members[0]];
    if (plan[i].members.size() == 1 && first.offset == job.range.offset) {
      job.dest = static_cast<char*>(outs[plan[i].members[0]]);
    } else {
      scratch[i].resize(job.range.size);
      job.dest = scratch[i].data();
    }
  }

  const RetryPolicy& retry = options_.retry;
  std::deque<Job*> ready;
  for (Job& job : jobs) ready.push_back(&job);
  std::vector<std::pair<Clock::time_point, Job*>> waiting;  // retries not yet due
  size_t done = 0, in_flight = 0;
  Status failure;

  auto start = [&](Job& job) -> Status {
    job.attempt += 1;
    if (job.attempt == 1) job.first_start = Clock::now();
    job.head = ResponseHead();
    job.received = 0;
    job.body_refused = false;
    job.refusal.clear();
    job.error_body.clear();
    job.errbuf[0] = '\0';
    job.easy = curl_easy_init();
    if (job.easy == nullptr) return Status::IOError(display_url_ + ": libcurl could not start");
    HeaderList headers;
    headers.emplace_back("host", target_.host);
    headers.emplace_back("range", job.probe ? "bytes=0-0"
                                            : "bytes=" + std::to_string(job.range.offset) + "-" +
                                                  std::to_string(job.range.end() - 1));
    if (!job.probe && !etag_.empty()) headers.emplace_back("if-match", etag_);
    for (const auto& h : target_.extra_headers) headers.push_back(h);
    if (target_.auth == AuthKind::kSigV4) {
      headers.emplace_back("x-amz-content-sha256", kEmptyPayloadSha256);
      SigV4Request req{"GET", target_.canonical_uri, {}, headers, kEmptyPayloadSha256};
      SignV4(req, target_.credentials, target_.region, target_.service,
             AmzDate(std::chrono::system_clock::now()));
      headers = std::move(req.headers);
    } else if (target_.auth == AuthKind::kBearer) {
      headers.emplace_back("Authorization", "Bearer " + target_.bearer_token);
    }
    for (const auto& [name, value] : headers)
      job.headers = curl_slist_append(job.headers, (name + ": " + value).c_str());
    CURL* e = job.easy;
    curl_easy_setopt(e, CURLOPT_URL, target_.url.c_str());
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, job.headers);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &OnHeader);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &job);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &OnBody);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &job);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, job.errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, &job);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(options_.connect_timeout_s * 1000));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.request_timeout_s * 1000));
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, options_.low_speed_bytes);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME,
                     std::max(1L, static_cast<long>(std::lround(options_.low_speed_time_s))));
    if (!options_.ca_bundle.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, options_.ca_bundle.c_str());
    // A retry goes over a new connection: the old one may be what failed.
    if (job.attempt > 1) curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    curl_multi_add_handle(impl_->multi, e);
    impl_->requests += 1;
    in_flight += 1;
    return Status::OK();
  };
  auto finish_handle = [&](Job& job) {
    curl_multi_remove_handle(impl_->multi, job.easy);
    curl_easy_cleanup(job.easy);
    curl_slist_free_all(job.headers);
    job.easy = nullptr;
    job.headers = nullptr;
    in_flight -= 1;
  };

  // Judges a finished attempt: OK, a problem worth another attempt (retryable), or final.
  auto judge = [&](Job& job, CURLcode code, bool& retryable, bool& throttled) -> std::string {
    retryable = false;
    throttled = false;
    long status = job.head.status;
    std::string status_text = status > 0 ? "HTTP " + std::to_string(status) : "no HTTP answer";
    if (code != CURLE_OK && !job.body_refused) {
      retryable = true;  // connection refused/reset, timeout, stall, TLS, DNS, short body
      std::string why = job.errbuf[0] != '\0' ? job.errbuf : curl_easy_strerror(code);
      return why + " (" + status_text + ")";
    }
    if (job.body_refused) {
      retryable = job.whole_object_answers++ < 2;  // a cache or proxy may do it once
      return job.refusal + " (" + status_text + ")";
    }
    std::string code_text = S3ErrorCode(job.error_body);
    std::string detail = status_text + (code_text.empty() ? "" : " " + code_text);
    if (status == 412)
      return "the object changed since it was opened (ETag " + etag_ +
             " no longer matches; " + detail + ")";
    if (status == 408 || status == 429 || status >= 500) {
      retryable = true;
      throttled = status == 429 || status == 503;
      return detail;
    }
    if (status == 416 && !job.probe)
      return "the range is beyond the object's end: the object changed since it was opened (" +
             detail + ")";
    if (status == 200 && job.whole_object) {
      // The whole object, asked as a range: 200 is a correct answer (length checked below).
    } else if (status != 206 && !(job.probe && status == 416)) {
      std::string hint;
      if (status == 403 && target_.auth == AuthKind::kNone && !target_.why_anonymous.empty())
        hint = "; " + target_.why_anonymous;
      if (status == 403 && target_.auth == AuthKind::kSigV4)
        hint = "; access denied to the credentials used (key id " +
               target_.credentials.access_key_id + ")";
      if (status == 301 || status == 400) {
        std::string region = job.head.Header("x-amz-bucket-region");
        if (!region.empty() && region != target_.region)
          hint = "; the bucket is in region " + region + ", not " + target_.region +
                 " (set AWS_REGION or the region option)";
      }
      return detail + hint;
    }
    // The answer is ours: check that it says exactly what was asked, of the same object.
    if (job.probe) {
      if (status == 416) {  // only an empty object has no byte 0
        auto total = ParseContentRange(job.head.Header("content-range"));
        if (!total || total->total != 0) return "answered 416 to bytes=0-0 (" + detail + ")";
        size_ = 0;
      } else {
        auto cr = ParseContentRange(job.head.Header("content-range"));
        if (!cr || cr->first != 0 || !cr->total) {
          retryable = true;
          return "answered 206 without a Content-Range of bytes 0-0/SIZE ('" +
                 job.head.Header("content-range") + "')";
        }
        size_ = *cr->total;
      }
      etag_ = job.head.Header("etag");
      generation_ = job.head.Header("x-goog-generation");
      last_modified_ = job.head.Header("last-modified");
      return "";
    }
    if (status == 206) {
      auto cr = ParseContentRange(job.head.Header("content-range"));
      if (!cr || cr->first != job.range.offset || cr->last + 1 != job.range.end()) {
        retryable = true;
        return "answered with Content-Range '" + job.head.Header("content-range") +
               "' for the range asked (" + detail + ")";
      }
      if (cr->total && *cr->total != size_)
        return "the object changed since it was opened: it is " + std::to_string(*cr->total) +
               " bytes, was " + std::to_string(size_);
    }
    if (job.received != job.range.size) {
      retryable = true;
      return "the body was " + std::to_string(job.received) + " bytes, not " +
             std::to_string(job.range.size) + " (truncated; " + detail + ")";
    }
    // A server that ignores If-Match still says which version it sent.
    std::string etag = job.head.Header("etag"), gen = job.head.Header("x-goog-generation");
    std::string modified = job.head.Header("last-modified");
    if ((!etag_.empty() && !etag.empty() && etag != etag_) ||
        (!generation_.empty() && !gen.empty() && gen != generation_) ||
        (etag_.empty() && !last_modified_.empty() && !modified.empty() &&
         modified != last_modified_))
      return "the object changed since it was opened (ETag " + etag_ + ", now " + etag + ")";
    return "";
  };

  while (done < jobs.size() && failure.ok()) {
    auto now = Clock::now();
    for (auto it = waiting.begin(); it != waiting.end();) {
      if (it->first <= now) {
        ready.push_back(it->second);
        it = waiting.erase(it);
      } else {
        ++it;
      }
    }
    while (!ready.empty() && in_flight < static_cast<size_t>(impl_->in_flight_limit)) {
      Job* job = ready.front();
      ready.pop_front();
      failure = start(*job);
      if (!failure.ok()) break;
    }
    if (!failure.ok()) break;
    int running = 0;
    curl_multi_perform(impl_->multi, &running);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(impl_->multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      Job* job = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&job));
      CURLcode code = msg->data.result;
      bool retryable = false, throttled = false;
      std::string problem = judge(*job, code, retryable, throttled);
      std::string retry_after = job->head.Header("retry-after");
      finish_handle(*job);
      if (problem.empty()) {
        done += 1;
        impl_->bytes += job->probe ? 0 : job->received;
        impl_->in_flight_limit = std::min(impl_->in_flight_limit + 1, options_.max_in_flight);
        continue;
      }
      if (throttled) impl_->in_flight_limit = std::max(1, impl_->in_flight_limit / 2);
      double elapsed = std::chrono::duration<double>(Clock::now() - job->first_start).count();
      // Full jitter: uniform in [0, min(cap, base * 2^(attempt-1))].
      double cap = std::min(retry.max_backoff_s,
                            retry.initial_backoff_s * std::ldexp(1.0, job->attempt - 1));
      double u = static_cast<double>(SplitMix64(impl_->jitter_state) >> 11) * 0x1.0p-53;
      double delay = u * cap;
      std::optional<double> asked = ParseRetryAfter(retry_after);
      std::string attempts = " after " + std::to_string(job->attempt) + " attempt" +
                             (job->attempt == 1 ? "" : "s");
      std::string where = display_url_ + ": " + (job->probe ? "opening (bytes 0-0)"
                                                            : RangeText(job->range)) + ": ";
      if (!retryable) {
        failure = Status::IOError(where + problem + attempts);
        break;
      }
      if (asked && *asked > retry.max_retry_after_s) {
        failure = Status::IOError(where + problem + ": the server asked to wait " +
                                  retry_after + " s (Retry-After), more than the " +
                                  std::to_string(retry.max_retry_after_s) + " s allowed" +
                                  attempts);
        break;
      }
      if (asked) delay = std::max(delay, *asked);
      if (job->attempt >= retry.max_attempts || elapsed + delay > retry.max_elapsed_s) {
        failure = Status::IOError(where + problem + attempts + " over " +
                                  std::to_string(static_cast<int>(std::ceil(elapsed))) +
                                  " s (giving up: the retry budget is spent)");
        break;
      }
      impl_->retries += 1;
      waiting.emplace_back(Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                              std::chrono::duration<double>(delay)),
                           job);
    }
    if (!failure.ok() || done == jobs.size()) break;
    // Sleep until a socket is ready or the next retry is due (at most 100 ms, so the
    // in-flight limit and due retries are looked at often).
    int timeout_ms = 100;
    for (const auto& w : waiting) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(w.first - Clock::now());
      timeout_ms = std::clamp(static_cast<int>(ms.count()), 0, timeout_ms);
    }
    if (in_flight > 0) {
      curl_multi_poll(impl_->multi, nullptr, 0, timeout_ms, nullptr);
    } else if (timeout_ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(timeout_ms));
    }
  }
  for (Job& job : jobs)
    if (job.easy != nullptr) finish_handle(job);
  if (!failure.ok()) return failure;

  // Hand the merged requests' bytes out to the asked ranges.
  size_t j = opening ? 1 : 0;
  for (size_t i = 0; i < plan.size(); ++i, ++j) {
    const Job& job = jobs[j];
    if (job.dest != scratch[i].data() || scratch[i].empty()) continue;
    for (size_t m : plan[i].members) {
      const ByteRange& r = ranges[m];
      std::memcpy(outs[m], job.dest + (r.offset - job.range.offset), r.size);
    }
  }
  return Status::OK();
}

}  // namespace cellfeed::storage
