// Private bindings of the storage layer (src/storage), for its tests until the formats
// read through it: _read_url_ranges(url, ranges, options) -> (list[bytes], info).
#include <nanobind/nanobind.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include "convert.h"
#include "storage/remote_object.h"

namespace cellfeed::python {

namespace {

using storage::StorageOptions;

// Options from a dict of the StorageOptions field names; an unknown name is an error.
StorageOptions OptionsFrom(const nb::dict& d) {
  StorageOptions o;
  for (auto [k, v] : d) {
    std::string key = nb::cast<std::string>(k);
    auto str = [&] { return nb::cast<std::string>(v); };
    auto num = [&] { return nb::cast<double>(v); };
    if (key == "anonymous") o.anonymous = nb::cast<bool>(v);
    else if (key == "profile") o.profile = str();
    else if (key == "region") o.region = str();
    else if (key == "endpoint_url") o.endpoint_url = str();
    else if (key == "access_key_id") o.access_key_id = str();
    else if (key == "secret_access_key") o.secret_access_key = str();
    else if (key == "session_token") o.session_token = str();
    else if (key == "bearer_token") o.bearer_token = str();
    else if (key == "requester_pays") o.requester_pays = nb::cast<bool>(v);
    else if (key == "user_project") o.user_project = str();
    else if (key == "max_in_flight") o.max_in_flight = nb::cast<int>(v);
    else if (key == "coalesce_hole") o.coalesce_hole = nb::cast<uint64_t>(v);
    else if (key == "max_request") o.max_request = nb::cast<uint64_t>(v);
    else if (key == "connect_timeout_s") o.connect_timeout_s = num();
    else if (key == "low_speed_time_s") o.low_speed_time_s = num();
    else if (key == "low_speed_bytes") o.low_speed_bytes = nb::cast<long>(v);
    else if (key == "request_timeout_s") o.request_timeout_s = num();
    else if (key == "ca_bundle") o.ca_bundle = str();
    else if (key == "max_attempts") o.retry.max_attempts = nb::cast<int>(v);
    else if (key == "initial_backoff_s") o.retry.initial_backoff_s = num();
    else if (key == "max_backoff_s") o.retry.max_backoff_s = num();
    else if (key == "max_elapsed_s") o.retry.max_elapsed_s = num();
    else if (key == "max_retry_after_s") o.retry.max_retry_after_s = num();
    else throw nb::value_error(("unknown storage option '" + key + "'").c_str());
  }
  return o;
}

}  // namespace

void BindStorage(nb::module_& m) {
  m.def(
      "_read_url_ranges",
      [](const std::string& url, const std::vector<std::pair<uint64_t, uint64_t>>& ranges,
         const nb::dict& options) {
        StorageOptions o = OptionsFrom(options);
        std::vector<std::string> bufs(ranges.size());
        storage::TransferStats stats;
        uint64_t size = 0;
        std::string etag;
        {
          nb::gil_scoped_release release;
          auto obj = ValueOrThrow(storage::RemoteObject::Open(url, o));
          std::vector<storage::ByteRange> rs;
          std::vector<void*> outs;
          for (size_t i = 0; i < ranges.size(); ++i) {
            rs.push_back({ranges[i].first, ranges[i].second});
            bufs[i].resize(ranges[i].second);
            outs.push_back(bufs[i].data());
          }
          ThrowIfError(obj->ReadRanges(rs, outs));
          stats = obj->stats();
          size = obj->size();
          etag = obj->etag();
        }
        nb::list out;
        for (const auto& b : bufs) out.append(nb::bytes(b.data(), b.size()));
        nb::dict info;
        info["size"] = size;
        info["etag"] = etag;
        info["requests"] = stats.requests;
        info["retries"] = stats.retries;
        info["bytes"] = stats.bytes;
        return nb::make_tuple(out, info);
      },
      nb::arg("url"), nb::arg("ranges"), nb::arg("options") = nb::dict(),
      "Private (tests of src/storage): opens `url` (s3://, gs://, http(s)://) and reads "
      "`ranges` [(offset, size)], returning (list of bytes, {size, etag, requests, retries, "
      "bytes}). OSError names the URL, the range and the last status.");
}

}  // namespace cellfeed::python
