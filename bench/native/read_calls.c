// What one small read of a warm file costs, issued one preadv at a time or in io_uring
// batches: does batching the reads of a fetch into one submission save the per-run cost
// that filtered corpora pay (README, "Declared corpora")? Random offsets in a file already
// in the page cache, each read into its own slot of a 16 MiB buffer, alternating the two
// ways 3 times. Needs liburing (Debian: apt-get install liburing-dev):
//
//   cc -O2 bench/native/read_calls.c -o /tmp/read_calls -luring
//   cat FILE > /dev/null; /tmp/read_calls FILE BYTES_PER_READ READS BATCH
#include "random_reads.h"

#include <liburing.h>
#include <sys/uio.h>

int main(int argc, char** argv) {
  struct RandomReads r;
  const int bad = OpenRandomReads(argc, argv, 1 << 30, &r);
  if (bad) return bad;
  const int fd = r.fd, n = r.n, batch = r.batch;
  const size_t size = r.size;
  const off_t* offsets = r.offsets;
  for (int rep = 0; rep < 3; ++rep) {
    long got1 = 0, got2 = 0;
    double t0 = Now();
    for (int i = 0; i < n; ++i) {
      struct iovec v = {Slot(&r, i), size};
      got1 += preadv(fd, &v, 1, offsets[i]);
    }
    const double one_by_one = Now() - t0;
    struct io_uring ring;
    if (io_uring_queue_init((unsigned)batch, &ring, 0) != 0) {
      perror("io_uring_queue_init");
      return 1;
    }
    t0 = Now();
    for (int i = 0; i < n; i += batch) {
      const int m = n - i < batch ? n - i : batch;
      for (int j = 0; j < m; ++j) {
        struct io_uring_sqe* e = io_uring_get_sqe(&ring);
        io_uring_prep_read(e, fd, Slot(&r, i + j),
                           (unsigned)size, (unsigned long long)offsets[i + j]);
      }
      io_uring_submit_and_wait(&ring, (unsigned)m);
      struct io_uring_cqe* c;
      unsigned head, seen = 0;
      io_uring_for_each_cqe(&ring, head, c) {
        got2 += c->res;
        ++seen;
      }
      io_uring_cq_advance(&ring, seen);
    }
    const double batched = Now() - t0;
    io_uring_queue_exit(&ring);
    printf("{\"bytes\": %zu, \"batch\": %d, \"preadv_us\": %.3f, \"io_uring_us\": %.3f, \"ok\": %s}\n",
           size, batch, one_by_one / n * 1e6, batched / n * 1e6,
           got1 == got2 && got1 == (long)size * n ? "true" : "false");
  }
  return 0;
}
