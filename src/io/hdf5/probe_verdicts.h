// The probes this process (or the process it was forked from) has already seen succeed,
// so that the same file is not probed again: a DataLoader worker forked after the open
// reopens its files, and a script may open the same collection many times.
//
// A verdict is kept for the file's bytes, not its name: the key is the file's device,
// inode, size, mtime and ctime (any write or metadata change moves the ctime, which no
// user can set back), with what was probed (mode and argument) and how (the probe
// program and its limits). A file changed since its probe is probed again. Only
// successes are kept: a failing file is probed (and reported) every time.
#pragma once

#include <string>

#include "io/hdf5/isolation.h"

namespace cellfeed::io {

// The key of `job` as its file is now ("" when the file cannot be stat'ed: probe it).
std::string ProbeVerdictKey(const ProbeJob& job, const std::string& exe, const IsolationLimits& limits);

bool ProbeSucceededBefore(const std::string& key);
void RememberProbeSuccess(const std::string& key);

// Forgets every verdict (the isolation bench measures first opens with it).
void ForgetProbeVerdicts();

}  // namespace cellfeed::io
