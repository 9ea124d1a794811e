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
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static double Now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s FILE BYTES_PER_READ READS BATCH\n", argv[0]);
    return 2;
  }
  const int fd = open(argv[1], O_RDONLY);
  const size_t size = (size_t)atol(argv[2]);
  const int n = atoi(argv[3]), batch = atoi(argv[4]);
  if (fd < 0 || size == 0 || n <= 0 || batch <= 0 || batch > 1024) return 2;
  const off_t file_size = lseek(fd, 0, SEEK_END);
  const off_t span = file_size - (off_t)size - 1;
  const char* map = mmap(NULL, (size_t)file_size, PROT_READ, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) {
    perror("mmap");
    return 1;
  }
  madvise((void*)map, (size_t)file_size, MADV_RANDOM);
  volatile char sink = 0;
  for (off_t o = 0; o < file_size; o += 4096) sink += map[o];  // page tables filled
  const size_t buf_bytes = (size_t)1 << 24;
  char* buf = aligned_alloc(4096, buf_bytes);
  for (size_t i = 0; i < buf_bytes; i += 4096) buf[i] = 1;  // no page faults while timing
  off_t* offsets = malloc(sizeof(off_t) * (size_t)n);
  unsigned s = 1;
  for (int i = 0; i < n; ++i) {
    s = s * 1103515245u + 12345u;
    offsets[i] = (off_t)(((unsigned long long)s * 4099ull) % (unsigned long long)span) & ~(off_t)3;
  }
  struct iovec* local = malloc(sizeof(struct iovec) * (size_t)batch);
  struct iovec* remote = malloc(sizeof(struct iovec) * (size_t)batch);
  for (int rep = 0; rep < 3; ++rep) {
    long got1 = 0, got2 = 0, got3 = 0;
    double t0 = Now();
    for (int i = 0; i < n; ++i) {
      struct iovec v = {buf + ((size_t)i * size) % (buf_bytes - size), size};
      got1 += preadv(fd, &v, 1, offsets[i]);
    }
    const double by_preadv = Now() - t0;
    t0 = Now();
    for (int i = 0; i < n; ++i) {
      memcpy(buf + ((size_t)i * size) % (buf_bytes - size), map + offsets[i], size);
      got2 += (long)size;
    }
    const double by_memcpy = Now() - t0;
    t0 = Now();
    for (int i = 0; i < n; i += batch) {
      const int m = n - i < batch ? n - i : batch;
      for (int j = 0; j < m; ++j) {
        local[j].iov_base = buf + ((size_t)(i + j) * size) % (buf_bytes - size);
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
