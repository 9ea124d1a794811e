// What bench/native/read_calls.c and mapped_reads.c share: their arguments (FILE
// BYTES_PER_READ READS BATCH), a 16 MiB destination buffer faulted in before timing, and
// the same pseudo-random 4-byte-aligned offsets over the whole file, so the two programs
// time the same reads.
#pragma once
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

struct RandomReads {
  int fd;
  size_t size;          // bytes per read
  int n, batch;         // reads, reads per batched call
  off_t file_size;
  char* buf;
  size_t buf_bytes;
  off_t* offsets;
};

static double Now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

// 0, or the exit status for a usage error (2).
static int OpenRandomReads(int argc, char** argv, int max_batch, struct RandomReads* r) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s FILE BYTES_PER_READ READS BATCH\n", argv[0]);
    return 2;
  }
  r->fd = open(argv[1], O_RDONLY);
  r->size = (size_t)atol(argv[2]);
  r->n = atoi(argv[3]);
  r->batch = atoi(argv[4]);
  if (r->fd < 0 || r->size == 0 || r->n <= 0 || r->batch <= 0 || r->batch > max_batch) return 2;
  r->file_size = lseek(r->fd, 0, SEEK_END);
  const off_t span = r->file_size - (off_t)r->size - 1;
  r->buf_bytes = (size_t)1 << 24;
  r->buf = aligned_alloc(4096, r->buf_bytes);
  for (size_t i = 0; i < r->buf_bytes; i += 4096) r->buf[i] = 1;  // no page faults while timing
  r->offsets = malloc(sizeof(off_t) * (size_t)r->n);
  unsigned s = 1;
  for (int i = 0; i < r->n; ++i) {
    s = s * 1103515245u + 12345u;
    r->offsets[i] = (((off_t)s * 4099) % span) & ~(off_t)3;
  }
  return 0;
}

// The i-th read's slot in the buffer.
static char* Slot(const struct RandomReads* r, int i) {
  return r->buf + ((size_t)i * r->size) % (r->buf_bytes - r->size);
}
