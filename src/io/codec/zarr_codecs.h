// Decoders of the zarr codecs (numcodecs for v2, the zarr v3 core codecs). Each decodes
// `in` into `out` and returns Invalid with a precise reason when the bytes are corrupt.
// They run on worker threads: no shared state, and blosc with its internal threads off.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "cellfeed/status.h"

namespace cellfeed::io::codec {

// A c-blosc1 frame (numcodecs Blosc / zarr v3 blosc): any inner compressor, byte- or
// bit-shuffle, decoded on the calling thread only.
Status DecodeBlosc(std::span<const uint8_t> in, size_t max_out, std::vector<uint8_t>& out);
// The first `prefix` decoded bytes of a blosc frame (rounded up to whole items): only the
// blosc blocks holding them are decompressed (blosc_getitem). A CSR row that starts in one
// chunk and ends in the next needs only the next chunk's first bytes.
Status DecodeBloscPrefix(std::span<const uint8_t> in, size_t prefix, size_t max_out,
                         std::vector<uint8_t>& out);
// One or more zstd frames.
Status DecodeZstd(std::span<const uint8_t> in, size_t max_out, std::vector<uint8_t>& out);
// numcodecs LZ4: a 4-byte little-endian decoded size, then an LZ4 block.
Status DecodeLz4Numcodecs(std::span<const uint8_t> in, size_t max_out, std::vector<uint8_t>& out);
// A gzip member (RFC 1952), as numcodecs GZip and zarr v3 gzip write.
Status InflateGzip(std::span<const uint8_t> in, size_t max_out, std::vector<uint8_t>& out);
// Raw deflate (RFC 1951): a zip member stored with method 8.
Status InflateRaw(std::span<const uint8_t> in, size_t max_out, std::vector<uint8_t>& out);
// CRC-32C (Castagnoli), as zarr v3's crc32c codec and shard indexes use.
uint32_t Crc32c(const uint8_t* data, size_t len);
// Verifies the trailing little-endian CRC-32C of `in` and strips it.
Status VerifyCrc32c(std::span<const uint8_t> in, std::vector<uint8_t>& out);
// Reverses the byte order of each `element_size`-byte element (big-endian stored data).
void SwapBytes(std::span<const uint8_t> in, size_t element_size, std::vector<uint8_t>& out);
// A chunk stored transposed (zarr v3 transpose order [1, 0], or zarr v2 order "F"):
// `in` holds cols x rows elements row-major; `out` gets rows x cols.
Status Untranspose(std::span<const uint8_t> in, size_t element_size, size_t rows, size_t cols,
                   std::vector<uint8_t>& out);
// The items of a vlen-utf8 chunk: a u32le count, then per item a u32le length and bytes
// (`expected_items` 0: any count).
Status DecodeVlenUtf8(std::span<const uint8_t> in, size_t expected_items,
                      std::vector<std::string>& out);

}  // namespace cellfeed::io::codec
