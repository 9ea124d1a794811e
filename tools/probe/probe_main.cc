// `cellfeed-probe open PATH LAYER | strings PATH DATASET [--memory-mb N] [--parent PID]
//  [--time-limit-s S]`
//
// Does libhdf5's part of opening a file (everything AnnDataFile::Open reads through
// libhdf5), or reads a string dataset whole, in a process of its own, so that a corrupt
// file that crashes or hangs libhdf5 kills only this process (see io/hdf5/isolation.h).
// Stdout is the pipe to the parent: each element is announced before libhdf5 reads it,
// and the outcome is the last line. Not meant to be run by hand.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <new>
#include <string>

#include "io/hdf5/h5_file.h"
#include "io/hdf5/isolation.h"
#include "source/anndata_source.h"

namespace {

// write(2) directly, one line at a time: nothing is lost in a buffer if libhdf5 crashes.
void WriteLine(char kind, const std::string& a, const std::string& b) {
  std::string line(1, kind);
  line += a;
  line += '\t';
  line += b;
  std::replace(line.begin(), line.end(), '\n', ' ');
  line += '\n';
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    const ssize_t n = ::write(STDOUT_FILENO, p, left);
    if (n <= 0) return;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

void Announce(const std::string& element, const std::string& attribute) {
  WriteLine(cellfeed::io::kProbeElementLine, element, attribute);
}

// Strings are read in slices, so that a large obs index does not need its whole size in
// memory here (the limit is on this process).
cellfeed::Status ReadAllStrings(const std::string& path, const std::string& dataset) {
  CF_ASSIGN_OR_RETURN(auto h5, cellfeed::io::H5File::Open(path));
  CF_ASSIGN_OR_RETURN(int64_t n, h5->Length(dataset));
  constexpr int64_t kSlice = int64_t{1} << 20;
  for (int64_t b = 0; b < n || b == 0; b += kSlice) {
    CF_RETURN_IF_ERROR(h5->ReadStrings(dataset, std::make_pair(b, std::min(n, b + kSlice))).status());
    if (n == 0) break;
  }
  return cellfeed::Status::OK();
}

// Never outlive the process that started it, however that process ends (a scheduler's
// SIGKILL included): the kernel sends SIGKILL when the parent dies. The parent may have died
// between the spawn and this call; then the probe is already an orphan and leaves at once.
void DieWithParent(pid_t parent) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(cellfeed::io::kProbeOrphanExit);
}

// And never run past its own limit, even when the parent lives on but no longer waits:
// SIGALRM after `seconds` of wall time, SIGXCPU (then SIGKILL) after as much CPU time.
void LimitOwnTime(long long seconds) {
  if (seconds <= 0) return;
  rlimit cpu{static_cast<rlim_t>(seconds), static_cast<rlim_t>(seconds + 1)};
  ::setrlimit(RLIMIT_CPU, &cpu);
  ::alarm(static_cast<unsigned>(seconds));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) return 2;
  const std::string mode = argv[1], path = argv[2], arg = argv[3];
  for (int i = 4; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--parent") DieWithParent(static_cast<pid_t>(std::atoll(argv[i + 1])));
    if (std::string(argv[i]) == "--time-limit-s") LimitOwnTime(std::atoll(argv[i + 1]));
    if (std::string(argv[i]) == "--memory-mb") {
      const long long mb = std::atoll(argv[i + 1]);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)  // they reserve terabytes
      if (mb > 0) {
        rlimit r{static_cast<rlim_t>(mb) << 20, static_cast<rlim_t>(mb) << 20};
        ::setrlimit(RLIMIT_AS, &r);
      }
#endif
    }
  }
  cellfeed::io::SetHdf5Trace(&Announce);
  cellfeed::Status st;
  try {
    if (mode == "open") {
      st = cellfeed::OpenAnnDataSource(path, arg).status();
    } else if (mode == "strings") {
      st = ReadAllStrings(path, arg);
    } else {
      return 2;
    }
  } catch (const std::bad_alloc&) {
    ::_exit(cellfeed::io::kProbeOutOfMemoryExit);
  }
  WriteLine(cellfeed::io::kProbeStatusLine, std::to_string(static_cast<int>(st.code())),
            st.message());
  // No exit handlers: libhdf5's own (closing what a corrupt file left open) could hang.
  ::_exit(0);
}
