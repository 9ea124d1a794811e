#include "io/mapped_file.h"

#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

namespace cellfeed::io {

namespace {

enum class Policy { kNone, kLarge, kAll };

Policy ThePolicy() {
  static const Policy p = [] {
    const char* v = std::getenv("CELLFEED_MAPPED_READS");
    if (v == nullptr) return Policy::kLarge;
    const std::string s = v;
    if (s == "0" || s == "off" || s == "no") return Policy::kNone;
    if (s == "all") return Policy::kAll;
    return Policy::kLarge;
  }();
  return p;
}

// One per thread, trivially constructed: the handler reads it without running any
// initializer, and the copy touches it first, so its storage exists by then.
struct BusGuard {
  sigjmp_buf env;
  volatile sig_atomic_t armed;
};
thread_local BusGuard t_guard;

struct sigaction g_previous;

void OnSigbus(int sig, siginfo_t* info, void* context) {
  BusGuard& g = t_guard;
  // A fault of this thread's guarded copy (or faulthandler re-raising it in this thread):
  // back out of the copy. A SIGBUS sent from elsewhere is not ours.
  if (g.armed && info != nullptr && info->si_code != SI_USER && info->si_code != SI_QUEUE) {
    g.armed = 0;
    siglongjmp(g.env, 1);  // SA_NODEFER: SIGBUS is not left blocked
  }
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction != nullptr) g_previous.sa_sigaction(sig, info, context);
    return;
  }
  if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    g_previous.sa_handler(sig);
    return;
  }
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, nullptr);
  raise(sig);  // the default action: the process ends as it would have without us
}

void InstallHandlerOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = OnSigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &g_previous);
  });
}

}  // namespace

std::unique_ptr<MappedFile> MappedFile::Map(int fd, uint64_t size) {
  const Policy p = ThePolicy();
  if (p == Policy::kNone || size == 0 || (p == Policy::kLarge && size < kMapMinBytes)) return nullptr;
  if (size > static_cast<uint64_t>(SIZE_MAX)) return nullptr;
  void* at = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_SHARED, fd, 0);
  if (at == MAP_FAILED) return nullptr;
  // No read-around on a fault: reads are random rows, and cold ones are announced
  // exactly (io/read_ahead.h), as they are for pread.
  ::madvise(at, static_cast<size_t>(size), MADV_RANDOM);
  InstallHandlerOnce();
  return std::unique_ptr<MappedFile>(new MappedFile(static_cast<const uint8_t*>(at), size));
}

MappedFile::~MappedFile() { ::munmap(const_cast<uint8_t*>(base_), static_cast<size_t>(size_)); }

bool MappedFile::Copy(uint64_t offset, void* out, size_t n) const {
  BusGuard* g = &t_guard;
  // savemask 0: no system call; the handler runs with SA_NODEFER, so no mask to restore.
  if (sigsetjmp(g->env, 0) != 0) return false;
  g->armed = 1;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  std::memcpy(out, base_ + offset, n);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  g->armed = 0;
  return true;
}

}  // namespace cellfeed::io
