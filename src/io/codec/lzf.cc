#include <lzf.h>

#include "io/codec/codecs.h"

namespace cellfeed::io::codec {

Status DecodeLzf(std::span<const uint8_t> in, size_t expected_out, std::vector<uint8_t>& out) {
  out.resize(expected_out);
  if (expected_out == 0) return Status::OK();
  unsigned n = lzf_decompress(in.data(), static_cast<unsigned>(in.size()), out.data(),
                              static_cast<unsigned>(out.size()));
  if (n == 0) {
    return Status::Invalid("corrupt LZF stream (" + std::to_string(in.size()) +
                           " bytes, expected to decode to " + std::to_string(expected_out) + ")");
  }
  out.resize(n);
  return Status::OK();
}

}  // namespace cellfeed::io::codec
