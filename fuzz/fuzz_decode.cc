// libFuzzer target: the chunk decoders and FilterPipeline::Decode on arbitrary bytes,
// with arbitrary filter pipelines, element sizes, filter masks and chunk sizes.
//
// Input layout (seeds in fuzz/corpus/decode are built this way by fuzz/make_seeds.py):
//   byte 0      number of filters (mod 5)
//   bytes 1..n  filter codes: 0 deflate, 1 shuffle, 2 fletcher32, 3 lzf, 4 szip,
//               5 nbit, 6 scale-offset, 7 an unknown plugin id (32015), other: deflate
//   next        element size code: 1 << (b % 4) (1, 2, 4 or 8 bytes)
//   next        filter mask (bit i set: filter i skipped for this chunk)
//   next 3      decoded chunk size, little endian (mod 256 KiB)
//   rest        the stored chunk
// Invariants checked: Make rejects exactly the filters we cannot decode; Decode either
// fails with a message, or gives exactly chunk_bytes bytes.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "io/codec/codecs.h"
#include "io/codec/filter_pipeline.h"

using namespace cellfeed::io::codec;

namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_decode: invariant violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  size_t pos = 0;
  const int nfilters = data[pos++] % 5;
  if (size < pos + nfilters + 5) return 0;
  static const int kIds[] = {kFilterDeflate, kFilterShuffle, kFilterFletcher32, kFilterLzf,
                             kFilterSzip, kFilterNbit, kFilterScaleOffset, 32015};
  std::vector<Filter> filters;
  bool decodable = true;
  for (int i = 0; i < nfilters; ++i) {
    const uint8_t code = data[pos++];
    Filter f;
    f.id = code < 8 ? kIds[code] : kFilterDeflate;
    f.params = {4};
    decodable = decodable && (code >= 8 || code < 4);
    filters.push_back(f);
  }
  const size_t esize = size_t{1} << (data[pos++] % 4);
  const uint32_t mask = data[pos++];
  // At most 256 KiB: bigger chunks only cost allocation time, not coverage.
  const size_t chunk_bytes =
      (size_t{data[pos]} | size_t{data[pos + 1]} << 8 | size_t{data[pos + 2]} << 16) % (1u << 18);
  pos += 3;
  std::span<const uint8_t> stored(data + pos, size - pos);

  auto pipeline = FilterPipeline::Make(filters, esize);
  Check(pipeline.ok() == decodable, "Make accepts exactly deflate/shuffle/fletcher32/lzf");
  std::vector<uint8_t> scratch, out;
  if (pipeline.ok()) {
    (void)pipeline.value().Describe();
    cellfeed::Status st = pipeline.value().Decode(stored, mask, chunk_bytes, scratch, out);
    if (st.ok()) {
      Check(out.size() == chunk_bytes, "a decoded chunk has exactly chunk_bytes bytes");
    } else {
      Check(!st.message().empty(), "errors carry a message");
    }
  }

  // The decoders on their own, on the same bytes.
  std::vector<uint8_t> o;
  if (InflateZlib(stored, chunk_bytes, o).ok()) {
    Check(o.size() <= chunk_bytes, "inflate bound");
    // A prefix of a valid stream is the same bytes as the whole stream's start.
    std::vector<uint8_t> whole = o, p;
    const size_t n = whole.size() / 2;
    Check(InflateZlibPrefix(stored, n, p).ok() && std::equal(p.begin(), p.end(), whole.begin()),
          "a prefix equals the start of the whole stream");
  }
  {
    std::vector<uint8_t> p;
    cellfeed::Status st = InflateZlibPrefix(stored, chunk_bytes / 3, p);
    Check(!st.ok() || p.size() == chunk_bytes / 3, "a prefix has exactly the bytes asked for");
  }
  if (DecodeLzf(stored, chunk_bytes, o).ok()) Check(o.size() <= chunk_bytes, "lzf bound");
  Unshuffle(stored, esize, o);
  Check(o.size() == stored.size(), "unshuffle keeps the size");
  if (VerifyFletcher32(stored, o).ok()) Check(o.size() + 4 == stored.size(), "fletcher strip");
  return 0;
}
