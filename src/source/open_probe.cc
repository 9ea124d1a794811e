#include "source/open_probe.h"

#include <sys/stat.h>

#include <algorithm>
#include <thread>

namespace cellfeed {

Status ProbeOpens(const std::vector<std::string>& paths, const std::vector<std::string>& layers,
                  const io::IsolationLimits& limits) {
  std::vector<io::ProbeJob> jobs;
  for (size_t i = 0; i < paths.size(); ++i) {
    const std::string& p = paths[i];
    struct stat st;
    if (::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) continue;
    jobs.push_back({"open", p, layers[i]});
  }
  if (jobs.empty()) return Status::OK();
  // Probes are mostly waiting on libhdf5's small reads: one per core, at most 16.
  const int parallel =
      static_cast<int>(std::clamp<unsigned>(std::thread::hardware_concurrency(), 1, 16));
  const std::vector<Status> results = io::ProbeInChild(jobs, limits, parallel);
  const Status* first = nullptr;
  std::vector<std::string> others;
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].ok()) continue;
    if (first == nullptr) {
      first = &results[i];
    } else {
      others.push_back(jobs[i].path);
    }
  }
  if (first == nullptr) return Status::OK();
  if (others.empty()) return *first;
  std::string list;
  for (const auto& o : others) list += (list.empty() ? "" : ", ") + o;
  return Status(first->code(), first->message() + " (also failing to open: " + list + ")");
}

}  // namespace cellfeed
