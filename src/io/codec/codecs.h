// Chunk decoders, one per HDF5 filter. Each decodes `in` into `out` (resized to the
// decoded length) and returns Invalid with a precise reason when the bytes are corrupt.
// They run on worker threads: no libhdf5, no shared state.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "cellfeed/status.h"

namespace cellfeed::io::codec {

// zlib stream (RFC 1950), as HDF5's deflate filter writes. `max_out` bounds the output.
Status InflateZlib(std::span<const uint8_t> in, size_t max_out, std::vector<uint8_t>& out);
// The first `prefix` bytes of a zlib stream's output, inflating no further (zlib's
// streaming inflate: libdeflate can only decode whole streams). The stream's Adler-32
// covers all of it, so a prefix is checked for well-formed deflate only.
Status InflateZlibPrefix(std::span<const uint8_t> in, size_t prefix, std::vector<uint8_t>& out);
// LZF (h5py filter 32000): raw liblzf stream; `expected_out` is the chunk's byte size.
Status DecodeLzf(std::span<const uint8_t> in, size_t expected_out, std::vector<uint8_t>& out);
// HDF5 shuffle filter: bytes of each element were grouped by significance.
void Unshuffle(std::span<const uint8_t> in, size_t element_size, std::vector<uint8_t>& out);
// HDF5 fletcher32: verifies the trailing 4-byte checksum and strips it.
Status VerifyFletcher32(std::span<const uint8_t> in, std::vector<uint8_t>& out);
uint32_t Fletcher32(const uint8_t* data, size_t len);  // HDF5's variant (exposed for tests)

}  // namespace cellfeed::io::codec
