#include "io/hdf5/isolation.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "io/hdf5/probe_verdicts.h"

extern char** environ;

namespace cellfeed::io {

namespace {

using Clock = std::chrono::steady_clock;

std::atomic<InterruptCheck> g_interrupt_check{nullptr};

std::optional<std::string> Env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

std::string Dirname(const std::string& p) {
  const size_t slash = p.rfind('/');
  return slash == std::string::npos ? "." : p.substr(0, slash);
}

bool IsExecutable(const std::string& p) { return ::access(p.c_str(), X_OK) == 0; }

std::string RealPath(const char* p) {
  char buf[PATH_MAX];
  return p != nullptr && ::realpath(p, buf) != nullptr ? std::string(buf) : std::string();
}

// One running probe.
struct Child {
  size_t job = 0;
  pid_t pid = -1;
  int fd = -1;
  std::string pending;   // a partial line
  std::string element;   // the last element announced
  std::optional<Status> reported;
  Clock::time_point deadline;
  bool timed_out = false;
};

void ConsumeLines(Child& c) {
  size_t nl;
  while ((nl = c.pending.find('\n')) != std::string::npos) {
    std::string line = c.pending.substr(0, nl);
    c.pending.erase(0, nl + 1);
    if (line.empty()) continue;
    const size_t tab = line.find('\t');
    std::string first = line.substr(1, tab == std::string::npos ? std::string::npos : tab - 1);
    std::string second = tab == std::string::npos ? "" : line.substr(tab + 1);
    if (line[0] == kProbeElementLine) {
      c.element = second.empty() ? first : first + " (attribute " + second + ")";
    } else if (line[0] == kProbeStatusLine) {
      const int code = std::atoi(first.c_str());
      c.reported = code == 0 ? Status::OK() : Status(static_cast<StatusCode>(code), second);
    }
  }
}

std::string SignalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

constexpr int kInheritedFd = 3;
const char kInheritedPath[] = "/proc/self/fd/3";

std::string ReplaceAll(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
  return s;
}

Status Outcome(const ProbeJob& job, const Child& c, int wstatus, const IsolationLimits& limits) {
  const std::string& path = job.path;
  const std::string what = job.mode == "open" ? "opening it" : "reading the strings of " + job.arg;
  const std::string at = c.element.empty() ? "" : " at element '" + c.element + "'";
  if (c.timed_out) {
    char secs[32];
    std::snprintf(secs, sizeof secs, "%g", limits.timeout_s);
    return Status::IOError(path + ": libhdf5 did not finish " + what + " within " + secs +
                           " s (stuck" + (at.empty() ? "" : at) +
                           "); the file is probably corrupt. If it is only slow (a remote "
                           "file system), raise the limit: CELLFEED_OPEN_TIMEOUT=SECONDS or "
                           "open(..., open_timeout=SECONDS)");
  }
  if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0 && c.reported) {
    if (job.fd < 0 || c.reported->ok()) return *c.reported;
    return Status(c.reported->code(), ReplaceAll(c.reported->message(), kInheritedPath, path));
  }
  if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == kProbeOutOfMemoryExit) {
    return Status::Invalid(path + ": libhdf5 needed more than " +
                           std::to_string(limits.memory_mb) + " MB " + what + at +
                           " (a corrupt length?); the limit is CELLFEED_PROBE_MEMORY_MB");
  }
  if (WIFSIGNALED(wstatus) && (WTERMSIG(wstatus) == SIGALRM || WTERMSIG(wstatus) == SIGXCPU)) {
    // The probe's own limit ended it before this process's deadline did (this process
    // was descheduled for a while): the same verdict as a timeout.
    Child late = c;
    late.timed_out = true;
    return Outcome(job, late, 0, limits);
  }
  if (WIFSIGNALED(wstatus)) {
    return Status::Invalid(path + ": libhdf5 crashed (" + SignalName(WTERMSIG(wstatus)) +
                           ") " + what + at +
                           ": the file is corrupt (cellfeed ran this in a probe process, so "
                           "only the probe died)");
  }
  return Status::Invalid(path + ": the open probe exited with status " +
                         std::to_string(WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1) + " " +
                         what + at + " without reporting a result");
}

Status Spawn(const std::string& exe, const ProbeJob& job, const IsolationLimits& limits,
             Child& c) {
  std::vector<std::string> args = {exe, job.mode, job.fd >= 0 ? kInheritedPath : job.path,
                                   job.arg};
  args.push_back("--memory-mb");
  args.push_back(std::to_string(limits.memory_mb));
  // The probe ends itself when this process dies (its parent-death signal, checked against
  // the race of a parent that died before it was set) or past its own time limit, so that
  // no probe outlives a training job killed by its scheduler (docs/RELIABILITY.md).
  args.push_back("--parent");
  args.push_back(std::to_string(::getpid()));
  args.push_back("--time-limit-s");
  args.push_back(std::to_string(ProbeSelfLimitSeconds(limits.timeout_s)));
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int fds[2];
  // Close-on-exec, so that probes started at the same time do not hold each other's pipes.
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return Status::IOError(job.path + ": cannot start the open probe: pipe: " +
                           std::strerror(errno));
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  if (job.fd >= 0) posix_spawn_file_actions_adddup2(&fa, job.fd, kInheritedFd);
  // Its own signal dispositions: the default ones, whatever the parent (Python) installed.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  const int rc = posix_spawn(&c.pid, exe.c_str(), &fa, &attr, argv.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    return Status::IOError(job.path + ": cannot start the open probe " + exe + ": " +
                           std::strerror(rc));
  }
  c.fd = fds[0];
  c.deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(limits.timeout_s));
  return Status::OK();
}

pid_t WaitFor(pid_t pid, int* wstatus) {
  pid_t r;
  do {
    r = ::waitpid(pid, wstatus, 0);
  } while (r < 0 && errno == EINTR);
  return r;
}

}  // namespace

IsolationLimits ResolveIsolation(std::optional<bool> isolate, std::optional<double> timeout_s,
                                 std::optional<int64_t> memory_mb) {
  IsolationLimits l;
  if (isolate) {
    l.enabled = *isolate;
  } else if (auto v = Env("CELLFEED_ISOLATE")) {
    l.enabled = !(*v == "0" || *v == "off" || *v == "false" || *v == "no");
  }
  if (timeout_s) {
    l.timeout_s = *timeout_s;
  } else if (auto v = Env("CELLFEED_OPEN_TIMEOUT")) {
    l.timeout_s = std::atof(v->c_str());
  }
  if (!(l.timeout_s > 0) || !std::isfinite(l.timeout_s)) l.timeout_s = 60;
  if (memory_mb) {
    l.memory_mb = *memory_mb;
  } else if (auto v = Env("CELLFEED_PROBE_MEMORY_MB")) {
    l.memory_mb = std::atoll(v->c_str());
  }
  l.memory_mb = std::max<int64_t>(0, l.memory_mb);
  return l;
}

std::string ProbeExecutable() {
  if (auto v = Env("CELLFEED_PROBE")) return *v;
  static const std::string found = [] {
    std::vector<std::string> dirs;
    Dl_info info;
    if (::dladdr(reinterpret_cast<void*>(&ProbeExecutable), &info) != 0) {
      const std::string self = RealPath(info.dli_fname);
      if (!self.empty()) dirs.push_back(Dirname(self));
    }
    const std::string exe = RealPath("/proc/self/exe");
    if (!exe.empty()) dirs.push_back(Dirname(exe));
    for (const auto& d : dirs) {
      if (IsExecutable(d + "/cellfeed-probe")) return d + "/cellfeed-probe";
    }
    return std::string();
  }();
  return found;
}

void SetProbeInterruptCheck(InterruptCheck check) { g_interrupt_check.store(check); }

namespace {

std::vector<Status> RunProbes(const std::vector<ProbeJob>& jobs, const IsolationLimits& limits,
                              int parallel, const std::string& exe) {
  std::vector<Status> out(jobs.size());
  if (exe.empty()) {
    for (size_t i = 0; i < jobs.size(); ++i) {
      out[i] = Status::IOError(
          jobs[i].path + ": cannot open it in isolation: the helper program cellfeed-probe was "
          "not found beside the cellfeed library or executable; set CELLFEED_PROBE=PATH, or "
          "turn isolation off (CELLFEED_ISOLATE=0, open(..., isolate=False))");
    }
    return out;
  }
  parallel = std::max(1, parallel);
  std::vector<Child> running;
  size_t next = 0;
  while (next < jobs.size() || !running.empty()) {
    while (next < jobs.size() && static_cast<int>(running.size()) < parallel) {
      Child c;
      c.job = next;
      Status st = Spawn(exe, jobs[next], limits, c);
      if (st.ok()) {
        running.push_back(std::move(c));
      } else {
        out[next] = st;
      }
      ++next;
    }
    if (running.empty()) continue;
    std::vector<pollfd> pfds;
    Clock::time_point soonest = running.front().deadline;
    for (const Child& c : running) {
      pfds.push_back({c.fd, POLLIN, 0});
      soonest = std::min(soonest, c.deadline);
    }
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(soonest - Clock::now());
    const int ms = static_cast<int>(std::clamp<int64_t>(wait.count() + 1, 0, 200));
    const int n = ::poll(pfds.data(), pfds.size(), ms);
    if (const InterruptCheck check = g_interrupt_check.load(); check != nullptr && check()) {
      for (Child& c : running) ::kill(c.pid, SIGKILL);
      for (Child& c : running) {
        ::close(c.fd);
        int wstatus = 0;
        WaitFor(c.pid, &wstatus);
        out[c.job] = Status::Cancelled(jobs[c.job].path + ": interrupted while its open probe ran");
      }
      for (; next < jobs.size(); ++next) {
        out[next] = Status::Cancelled(jobs[next].path + ": interrupted before its open probe ran");
      }
      return out;
    }
    if (n < 0 && errno != EINTR) {
      for (Child& c : running) ::kill(c.pid, SIGKILL);  // cannot watch them: stop them
    }
    const Clock::time_point now = Clock::now();
    std::vector<Child> still;
    for (size_t i = 0; i < running.size(); ++i) {
      Child& c = running[i];
      bool done = false;
      if (n > 0 && (pfds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
        char buf[4096];
        const ssize_t got = ::read(c.fd, buf, sizeof buf);
        if (got > 0) {
          c.pending.append(buf, static_cast<size_t>(got));
          ConsumeLines(c);
        } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
          done = true;
        }
      }
      if (!done && (now >= c.deadline || n < 0)) {
        c.timed_out = n >= 0;
        ::kill(c.pid, SIGKILL);
        done = true;
      }
      if (!done) {
        still.push_back(std::move(c));
        continue;
      }
      ::close(c.fd);
      int wstatus = 0;
      if (WaitFor(c.pid, &wstatus) < 0) wstatus = 0;
      out[c.job] = Outcome(jobs[c.job], c, wstatus, limits);
    }
    running = std::move(still);
  }
  return out;
}

}  // namespace

std::vector<Status> ProbeInChild(const std::vector<ProbeJob>& jobs, const IsolationLimits& limits,
                                 int parallel) {
  const std::string exe = ProbeExecutable();
  // Jobs a probe already passed (in this process or before a fork) on the same bytes,
  // with the same program and limits, are not probed again (io/hdf5/probe_verdicts.h).
  std::vector<std::string> keys;
  std::vector<ProbeJob> todo;
  std::vector<size_t> todo_index;
  std::vector<Status> out(jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i) {
    keys.push_back(exe.empty() ? std::string() : ProbeVerdictKey(jobs[i], exe, limits));
    if (ProbeSucceededBefore(keys.back())) continue;
    todo.push_back(jobs[i]);
    todo_index.push_back(i);
  }
  if (todo.empty()) return out;
  const std::vector<Status> ran = RunProbes(todo, limits, parallel, exe);
  for (size_t k = 0; k < ran.size(); ++k) {
    out[todo_index[k]] = ran[k];
    if (ran[k].ok()) RememberProbeSuccess(keys[todo_index[k]]);
  }
  return out;
}

}  // namespace cellfeed::io
