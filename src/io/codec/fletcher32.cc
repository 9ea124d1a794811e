#include "io/codec/codecs.h"

namespace cellfeed::io::codec {

// HDF5's Fletcher-32 (H5checksum.c): big-endian 16-bit words, sums folded every 360 words.
uint32_t Fletcher32(const uint8_t* data, size_t len) {
  size_t words = len / 2;
  uint32_t sum1 = 0, sum2 = 0;
  while (words) {
    size_t t = words > 360 ? 360 : words;
    words -= t;
    do {
      sum1 += (uint32_t(data[0]) << 8) | uint32_t(data[1]);
      data += 2;
      sum2 += sum1;
    } while (--t);
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  }
  if (len % 2) {
    sum1 += uint32_t(*data) << 8;
    sum2 += sum1;
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  }
  sum1 = (sum1 & 0xffff) + (sum1 >> 16);
  sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  return (sum2 << 16) | sum1;
}

Status VerifyFletcher32(std::span<const uint8_t> in, std::vector<uint8_t>& out) {
  if (in.size() < 4) return Status::Invalid("fletcher32 chunk shorter than its checksum");
  const size_t n = in.size() - 4;
  const uint8_t* c = in.data() + n;
  const uint32_t stored = uint32_t(c[0]) | uint32_t(c[1]) << 8 | uint32_t(c[2]) << 16 |
                          uint32_t(c[3]) << 24;
  const uint32_t sum = Fletcher32(in.data(), n);
  // Files from HDF5 < 1.6.3 stored the checksum with the bytes of each half swapped.
  const uint32_t swapped = ((sum & 0x00ff00ffu) << 8) | ((sum & 0xff00ff00u) >> 8);
  if (stored != sum && stored != swapped) {
    return Status::Invalid("fletcher32 checksum mismatch (stored " + std::to_string(stored) +
                           ", computed " + std::to_string(sum) + ")");
  }
  out.assign(in.begin(), in.begin() + n);
  return Status::OK();
}

}  // namespace cellfeed::io::codec
