#include "io/codec/codecs.h"

namespace cellfeed::io::codec {

// HDF5 stores byte j of every element together; bytes past the last whole element
// are copied as they are (H5Zshuffle.c does the same).
void Unshuffle(std::span<const uint8_t> in, size_t element_size, std::vector<uint8_t>& out) {
  out.resize(in.size());
  if (element_size <= 1 || in.size() < element_size) {
    std::copy(in.begin(), in.end(), out.begin());
    return;
  }
  const size_t n = in.size() / element_size;
  for (size_t j = 0; j < element_size; ++j) {
    const uint8_t* src = in.data() + j * n;
    uint8_t* dst = out.data() + j;
    for (size_t i = 0; i < n; ++i) dst[i * element_size] = src[i];
  }
  const size_t tail = n * element_size;
  std::copy(in.begin() + tail, in.end(), out.begin() + tail);
}

}  // namespace cellfeed::io::codec
