// Running libhdf5 on an untrusted file in a short-lived child process first.
//
// libhdf5 1.10 crashes, loops forever or allocates without bound on some corrupt files
// (fuzz/libhdf5-crashes). Before this process lets libhdf5 touch a file, a probe program
// (`cellfeed-probe`, shipped beside the library) does the same libhdf5 work on it under a
// time and address-space limit, reporting each element it is about to read over a pipe.
// If the probe dies by a signal, runs out of time or memory, the caller gets an error
// naming the file and that element; if it succeeds, this process does the work for real
// (libhdf5 is deterministic on the same bytes; a file replaced in between is the residual
// risk, narrowed by the identity checks of H5File/AnnDataFile). docs/RELIABILITY.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cellfeed/status.h"

namespace cellfeed::io {

struct IsolationLimits {
  bool enabled = true;
  double timeout_s = 60;     // per probe
  int64_t memory_mb = 8192;  // the probe's RLIMIT_AS; 0 = none
};

// Unset options come from the environment: CELLFEED_ISOLATE (0/off/false turns isolation
// off), CELLFEED_OPEN_TIMEOUT (seconds), CELLFEED_PROBE_MEMORY_MB; else the defaults above.
IsolationLimits ResolveIsolation(std::optional<bool> isolate, std::optional<double> timeout_s,
                                 std::optional<int64_t> memory_mb);

// The probe program: $CELLFEED_PROBE, else `cellfeed-probe` in the folder of the binary
// holding this code (the Python extension, the CLI, a test), else beside the executable.
// "" when none is found.
std::string ProbeExecutable();

// One probe: `cellfeed-probe MODE PATH ARG` with MODE "open" (ARG: the layer) or
// "strings" (ARG: the dataset). With fd >= 0 the probe reads that open descriptor (as
// /proc/self/fd/3), i.e. the very file this process has open even if its path was since
// deleted or replaced; messages still name `path`.
struct ProbeJob {
  std::string mode, path, arg;
  int fd = -1;
};

// The host's interrupt check, polled (about 5 times a second) while probes run: when it
// returns true every running probe is killed and the unfinished jobs end Cancelled, so
// Ctrl-C does not wait out a hanging file's timeout. The Python module installs one that
// runs Python's signal handlers on the main thread. nullptr (the default): none.
using InterruptCheck = bool (*)();
void SetProbeInterruptCheck(InterruptCheck check);

// Runs every job, at most `parallel` at once, each under `limits`; one Status per job.
std::vector<Status> ProbeInChild(const std::vector<ProbeJob>& jobs, const IsolationLimits& limits,
                                 int parallel = 1);

// The probe's side of the pipe (tools/probe/probe_main.cc): one line per event.
inline constexpr char kProbeElementLine = 'E';  // "E<element>\t<attribute>\n"
inline constexpr char kProbeStatusLine = 'S';   // "S<code>\t<message>\n", last
inline constexpr int kProbeOutOfMemoryExit = 3;
inline constexpr int kProbeOrphanExit = 4;  // its parent was gone before it could watch it

// The probe's own wall-clock and CPU limit, in whole seconds: past the parent's deadline
// (which kills it first and reports a timeout), so it only acts when nobody is waiting.
inline int64_t ProbeSelfLimitSeconds(double timeout_s) {
  return static_cast<int64_t>(timeout_s * 1.25) + 2;
}

}  // namespace cellfeed::io
