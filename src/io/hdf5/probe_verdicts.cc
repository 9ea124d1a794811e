#include "io/hdf5/probe_verdicts.h"

#include <pthread.h>
#include <sys/stat.h>

#include <mutex>
#include <unordered_set>

namespace cellfeed::io {

namespace {

struct Verdicts {
  std::mutex mu;
  std::unordered_set<std::string> ok;
  Verdicts() {
    // A fork while another thread holds the lock would leave it held for ever in the
    // child (a DataLoader worker): take it around fork() so that it is free on both sides.
    pthread_atfork([] { Get().mu.lock(); }, [] { Get().mu.unlock(); }, [] { Get().mu.unlock(); });
  }
  static Verdicts& Get() {
    static Verdicts* v = new Verdicts();  // never destroyed: atfork handlers outlive exit
    return *v;
  }
};

}  // namespace

std::string ProbeVerdictKey(const ProbeJob& job, const std::string& exe,
                            const IsolationLimits& limits) {
  struct stat st;
  if ((job.fd >= 0 ? ::fstat(job.fd, &st) : ::stat(job.path.c_str(), &st)) != 0) return "";
  std::string key;
  for (const long long v : {static_cast<long long>(st.st_dev), static_cast<long long>(st.st_ino),
                            static_cast<long long>(st.st_size),
                            static_cast<long long>(st.st_mtim.tv_sec), static_cast<long long>(st.st_mtim.tv_nsec),
                            static_cast<long long>(st.st_ctim.tv_sec), static_cast<long long>(st.st_ctim.tv_nsec),
                            static_cast<long long>(limits.memory_mb)}) {
    key += std::to_string(v) + '\x1f';
  }
  key += std::to_string(limits.timeout_s) + '\x1f' + exe + '\x1f' + job.mode + '\x1f' + job.arg;
  return key;
}

bool ProbeSucceededBefore(const std::string& key) {
  if (key.empty()) return false;
  Verdicts& v = Verdicts::Get();
  std::lock_guard<std::mutex> g(v.mu);
  return v.ok.count(key) > 0;
}

void RememberProbeSuccess(const std::string& key) {
  if (key.empty()) return;
  Verdicts& v = Verdicts::Get();
  std::lock_guard<std::mutex> g(v.mu);
  v.ok.insert(key);
}

void ForgetProbeVerdicts() {
  Verdicts& v = Verdicts::Get();
  std::lock_guard<std::mutex> g(v.mu);
  v.ok.clear();
}

}  // namespace cellfeed::io
