#include <lzf.h>

#include "io/codec/codecs.h"

namespace cellfeed::io::codec {

Status DecodeLzf(std::span<const uint8_t> in, size_t expected_out, std::vector<uint8_t>& out) {
  out.resize(expected_out);
  if (expected_out == 0) return Status::OK();
  // liblzf reads the first control byte before checking the input length: never call it
  // on an empty stream (fuzz/regressions/decode/lzf-empty-input).
  if (in.empty()) return Status::Invalid("corrupt LZF stream: no stored bytes");
  unsigned n = lzf_decompress(in.data(), static_cast<unsigned>(in.size()), out.data(),
                              static_cast<unsigned>(out.size()));
  if (n == 0) {
    return Status::Invalid("corrupt LZF stream: " + std::to_string(in.size()) +
                           " stored bytes do not decode to at most " +
                           std::to_string(expected_out) + " bytes");
  }
  out.resize(n);
  return Status::OK();
}

}  // namespace cellfeed::io::codec
