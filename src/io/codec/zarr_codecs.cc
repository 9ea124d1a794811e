#include "io/codec/zarr_codecs.h"

#include <blosc.h>
#include <libdeflate.h>
#include <lz4.h>
#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_findDecompressedSize
#include <zstd.h>

#include <algorithm>
#include <cstring>

namespace cellfeed::io::codec {

namespace {

uint32_t LoadU32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

struct Decompressor {
  libdeflate_decompressor* d = libdeflate_alloc_decompressor();
  ~Decompressor() { libdeflate_free_decompressor(d); }
};

std::string Bytes(size_t n) { return std::to_string(n) + " stored bytes"; }

template <typename Fn>
Status Inflate(const char* what, std::span<const uint8_t> in, size_t max_out,
               std::vector<uint8_t>& out, Fn fn) {
  thread_local Decompressor dec;
  if (dec.d == nullptr) return Status::IOError("cannot allocate a deflate decompressor");
  out.resize(max_out);
  size_t actual = 0;
  switch (fn(dec.d, in.data(), in.size(), out.data(), out.size(), &actual)) {
    case LIBDEFLATE_SUCCESS:
      out.resize(actual);
      return Status::OK();
    case LIBDEFLATE_INSUFFICIENT_SPACE:
      return Status::Invalid(std::string("corrupt ") + what + " stream: " + Bytes(in.size()) +
                             " inflate to more than " + std::to_string(max_out) + " bytes");
    default:
      return Status::Invalid(std::string("corrupt ") + what + " stream: " + Bytes(in.size()) +
                             " are not a valid " + what + " stream (bad data or checksum)");
  }
}

// CRC-32C table, reflected polynomial 0x82F63B78.
struct Crc32cTable {
  uint32_t t[8][256];
  Crc32cTable() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i) {
      for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
    }
  }
};

// A blosc frame's header against the chunk: its length, its compressed size, its decoded
// size (returned) within `max_out`.
Result<size_t> CheckBloscHeader(std::span<const uint8_t> in, size_t max_out) {
  if (in.size() < BLOSC_MIN_HEADER_LENGTH) {
    return Status::Invalid("corrupt blosc frame: " + Bytes(in.size()) + " are shorter than its " +
                           std::to_string(BLOSC_MIN_HEADER_LENGTH) + "-byte header");
  }
  size_t nbytes = 0, cbytes = 0, block = 0;
  blosc_cbuffer_sizes(in.data(), &nbytes, &cbytes, &block);
  if (cbytes != in.size()) {
    return Status::Invalid("corrupt blosc frame: header says " + std::to_string(cbytes) +
                           " compressed bytes, the chunk has " + std::to_string(in.size()));
  }
  if (nbytes > max_out) {
    return Status::Invalid("corrupt blosc frame: header says " + std::to_string(nbytes) +
                           " decoded bytes, more than the chunk's " + std::to_string(max_out));
  }
  return nbytes;
}

}  // namespace

Status DecodeBlosc(std::span<const uint8_t> in, size_t max_out, std::vector<uint8_t>& out) {
  CF_ASSIGN_OR_RETURN(const size_t nbytes, CheckBloscHeader(in, max_out));
  out.resize(nbytes);
  // numinternalthreads = 1: decoding runs on our worker threads, not blosc's pool.
  const int n = blosc_decompress_ctx(in.data(), out.data(), out.size(), 1);
  if (n < 0 || static_cast<size_t>(n) != nbytes) {
    return Status::Invalid("corrupt blosc frame: " + Bytes(in.size()) + " do not decode (blosc "
                           "error " + std::to_string(n) + ")");
  }
  return Status::OK();
}

Status DecodeBloscPrefix(std::span<const uint8_t> in, size_t prefix, size_t max_out,
                         std::vector<uint8_t>& out) {
  CF_ASSIGN_OR_RETURN(size_t nbytes, CheckBloscHeader(in, max_out));
  // getitem trusts the block offsets, which a whole decode would check as it goes.
  if (prefix > nbytes || blosc_cbuffer_validate(in.data(), in.size(), &nbytes) != 0) {
    return Status::Invalid("corrupt blosc frame: " + Bytes(in.size()) + " holding " +
                           std::to_string(nbytes) + " decoded bytes cannot give the first " +
                           std::to_string(prefix));
  }
  const size_t typesize = std::max<size_t>(1, in[3]);
  const size_t items = (prefix + typesize - 1) / typesize;
  out.resize(items * typesize);
  if (items == 0) return Status::OK();
  const int n = blosc_getitem(in.data(), 0, static_cast<int>(items), out.data());
  if (n < 0 || static_cast<size_t>(n) != out.size()) {
    return Status::Invalid("corrupt blosc frame: its first " + std::to_string(out.size()) +
                           " bytes do not decode (blosc error " + std::to_string(n) + ")");
  }
  return Status::OK();
}

Status DecodeZstd(std::span<const uint8_t> in, size_t max_out, std::vector<uint8_t>& out) {
  // Frames written in one go declare their size: allocate that, not the limit.
  const unsigned long long declared = ZSTD_findDecompressedSize(in.data(), in.size());
  if (declared == ZSTD_CONTENTSIZE_ERROR) {
    return Status::Invalid("corrupt zstd frame: " + Bytes(in.size()) + " are not zstd frames");
  }
  if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared > max_out) {
    return Status::Invalid("corrupt zstd frame: declares " + std::to_string(declared) +
                           " bytes, more than the chunk's " + std::to_string(max_out));
  }
  out.resize(declared != ZSTD_CONTENTSIZE_UNKNOWN ? static_cast<size_t>(declared) : max_out);
  thread_local ZSTD_DCtx* ctx = ZSTD_createDCtx();
  if (ctx == nullptr) return Status::IOError("cannot allocate a zstd decompressor");
  const size_t n = ZSTD_decompressDCtx(ctx, out.data(), out.size(), in.data(), in.size());
  if (ZSTD_isError(n)) {
    return Status::Invalid("corrupt zstd frame: " + Bytes(in.size()) + ": " +
                           ZSTD_getErrorName(n));
  }
  out.resize(n);
  return Status::OK();
}

Status DecodeLz4Numcodecs(std::span<const uint8_t> in, size_t max_out, std::vector<uint8_t>& out) {
  if (in.size() < 4) {
    return Status::Invalid("corrupt lz4 chunk: " + Bytes(in.size()) +
                           " lack numcodecs' 4-byte size header");
  }
  const uint32_t size = LoadU32(in.data());
  if (size > max_out) {
    return Status::Invalid("corrupt lz4 chunk: header says " + std::to_string(size) +
                           " decoded bytes, more than the chunk's " + std::to_string(max_out));
  }
  out.resize(size);
  const int n = LZ4_decompress_safe(reinterpret_cast<const char*>(in.data() + 4),
                                    reinterpret_cast<char*>(out.data()),
                                    static_cast<int>(in.size() - 4), static_cast<int>(size));
  if (n < 0 || static_cast<uint32_t>(n) != size) {
    return Status::Invalid("corrupt lz4 block: " + Bytes(in.size()) + " do not decode to the " +
                           std::to_string(size) + " bytes its header says");
  }
  return Status::OK();
}

Status InflateGzip(std::span<const uint8_t> in, size_t max_out, std::vector<uint8_t>& out) {
  return Inflate("gzip", in, max_out, out, libdeflate_gzip_decompress);
}

Status InflateRaw(std::span<const uint8_t> in, size_t max_out, std::vector<uint8_t>& out) {
  return Inflate("deflate", in, max_out, out, libdeflate_deflate_decompress);
}

uint32_t Crc32c(const uint8_t* p, size_t n) {
  static const Crc32cTable table;
  const auto& t = table.t;
  uint32_t c = 0xFFFFFFFFu;
  while (n >= 8) {  // slicing by 8
    const uint32_t lo = c ^ LoadU32(p), hi = LoadU32(p + 4);
    c = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
        t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n--) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xff];
  return c ^ 0xFFFFFFFFu;
}

Status VerifyCrc32c(std::span<const uint8_t> in, std::vector<uint8_t>& out) {
  if (in.size() < 4) {
    return Status::Invalid("corrupt crc32c chunk: " + Bytes(in.size()) + " lack the checksum");
  }
  const size_t n = in.size() - 4;
  const uint32_t want = LoadU32(in.data() + n), got = Crc32c(in.data(), n);
  if (want != got) {
    char msg[96];
    std::snprintf(msg, sizeof msg, "crc32c mismatch: stored 0x%08x, computed 0x%08x", want, got);
    return Status::Invalid(msg);
  }
  out.assign(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(n));
  return Status::OK();
}

void SwapBytes(std::span<const uint8_t> in, size_t es, std::vector<uint8_t>& out) {
  out.resize(in.size());
  const size_t n = in.size() / es;
  for (size_t i = 0; i < n; ++i) {
    for (size_t b = 0; b < es; ++b) out[i * es + b] = in[i * es + es - 1 - b];
  }
  std::memcpy(out.data() + n * es, in.data() + n * es, in.size() - n * es);
}

Status Untranspose(std::span<const uint8_t> in, size_t es, size_t rows, size_t cols,
                   std::vector<uint8_t>& out) {
  if (in.size() != rows * cols * es) {
    return Status::Invalid("transposed chunk has " + std::to_string(in.size()) +
                           " bytes, expected " + std::to_string(rows * cols * es));
  }
  out.resize(in.size());
  for (size_t c = 0; c < cols; ++c) {
    for (size_t r = 0; r < rows; ++r) {
      std::memcpy(out.data() + (r * cols + c) * es, in.data() + (c * rows + r) * es, es);
    }
  }
  return Status::OK();
}

Status DecodeVlenUtf8(std::span<const uint8_t> in, size_t expected_items,
                      std::vector<std::string>& out) {
  if (in.size() < 4) return Status::Invalid("corrupt vlen-utf8 chunk: no item count");
  const uint32_t n = LoadU32(in.data());
  if (expected_items != 0 && n != expected_items) {
    return Status::Invalid("corrupt vlen-utf8 chunk: " + std::to_string(n) + " items, expected " +
                           std::to_string(expected_items));
  }
  out.clear();
  out.reserve(n);
  size_t at = 4;
  for (uint32_t i = 0; i < n; ++i) {
    if (in.size() - at < 4) {
      return Status::Invalid("corrupt vlen-utf8 chunk: ends inside item " + std::to_string(i));
    }
    const uint32_t len = LoadU32(in.data() + at);
    at += 4;
    if (in.size() - at < len) {
      return Status::Invalid("corrupt vlen-utf8 chunk: item " + std::to_string(i) + " of " +
                             std::to_string(len) + " bytes runs past the chunk's end");
    }
    out.emplace_back(reinterpret_cast<const char*>(in.data() + at), len);
    at += len;
  }
  return Status::OK();
}

}  // namespace cellfeed::io::codec
