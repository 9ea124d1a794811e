// What a small read of a warm file costs by preadv, by memcpy out of a shared read-only
// mapping of the file, and by one process_vm_readv gathering a whole fetch's ranges out
// of that mapping (a fault there is an error, not SIGBUS). Does a mapping remove the
// ~1 us fixed cost per run that filtered corpora pay (README, "Declared corpora")?
// Random offsets over the whole file, each read into its own slot of a 16 MiB buffer;
// the mapping's pages are touched once before timing (as after a first epoch); the three
// ways alternate 3 times.
//
//   cc -O2 bench/native/mapped_reads.c -o /tmp/mapped_reads
//   cat FILE > /dev/null; /tmp/mapped_reads FILE BYTES_PER_READ READS BATCH
#include "random_reads.h"

#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>

int main(int argc, char** argv) {
  struct RandomReads r;
  const int bad = OpenRandomReads(argc, argv, 1024, &r);  // process_vm_readv: IOV_MAX
  if (bad) return bad;
  const int fd = r.fd, n = r.n, batch = r.batch;
  const size_t size = r.size;
  const off_t file_size = r.file_size;
  const off_t* offsets = r.offsets;
  const char* map = mmap(NULL, (size_t)file_size, PROT_READ, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) {
    perror("mmap");
    return 1;
  }
  madvise((void*)map, (size_t)file_size, MADV_RANDOM);
  volatile char sink = 0;
  for (off_t o = 0; o < file_size; o += 4096) sink += map[o];  // page tables filled
  struct iovec* local = malloc(sizeof(struct iovec) * (size_t)batch);
  struct iovec* remote = malloc(sizeof(struct iovec) * (size_t)batch);
  for (int rep = 0; rep < 3; ++rep) {
    long got1 = 0, got2 = 0, got3 = 0;
    double t0 = Now();
    for (int i = 0; i < n; ++i) {
      struct iovec v = {Slot(&r, i), size};
      got1 += preadv(fd, &v, 1, offsets[i]);
    }
    const double by_preadv = Now() - t0;
    t0 = Now();
    for (int i = 0; i < n; ++i) {
      memcpy(Slot(&r, i), map + offsets[i], size);
      got2 += (long)size;
    }
    const double by_memcpy = Now() - t0;
    t0 = Now();
    for (int i = 0; i < n; i += batch) {
      const int m = n - i < batch ? n - i : batch;
      for (int j = 0; j < m; ++j) {
        local[j].iov_base = Slot(&r, i + j);
        local[j].iov_len = size;
        remote[j].iov_base = (void*)(map + offsets[i + j]);
        remote[j].iov_len = size;
      }
      got3 += process_vm_readv(getpid(), local, (unsigned long)m, remote, (unsigned long)m, 0);
    }
    const double by_vm_readv = Now() - t0;
    printf("%zu B x %d: preadv %.3f us, mapped memcpy %.3f us, process_vm_readv (%d a call) %.3f us a read"
           " (%ld/%ld/%ld bytes)\n", size, n, by_preadv / n * 1e6, by_memcpy / n * 1e6, batch,
           by_vm_readv / n * 1e6, got1, got2, got3);
  }
  return (int)sink & 0;
}
