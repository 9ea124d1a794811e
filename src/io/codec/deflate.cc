#include <libdeflate.h>
#include <zlib.h>

#include "io/codec/codecs.h"

namespace cellfeed::io::codec {

namespace {
// libdeflate decompressors are cheap to keep and not thread-safe: one per thread.
struct Decompressor {
  libdeflate_decompressor* d = libdeflate_alloc_decompressor();
  ~Decompressor() { libdeflate_free_decompressor(d); }
};
}  // namespace

Status InflateZlib(std::span<const uint8_t> in, size_t max_out, std::vector<uint8_t>& out) {
  thread_local Decompressor dec;
  if (dec.d == nullptr) return Status::IOError("cannot allocate a deflate decompressor");
  out.resize(max_out);
  size_t actual = 0;
  libdeflate_result r = libdeflate_zlib_decompress(dec.d, in.data(), in.size(), out.data(),
                                                   out.size(), &actual);
  switch (r) {
    case LIBDEFLATE_SUCCESS:
      out.resize(actual);
      return Status::OK();
    case LIBDEFLATE_BAD_DATA:
      return Status::Invalid("corrupt deflate stream: " + std::to_string(in.size()) +
                             " stored bytes are not a valid zlib stream (bad data or checksum)");
    case LIBDEFLATE_INSUFFICIENT_SPACE:
      return Status::Invalid("corrupt deflate stream: " + std::to_string(in.size()) +
                             " stored bytes inflate to more than " + std::to_string(max_out) +
                             " bytes");
    default:
      return Status::Invalid("corrupt deflate stream: " + std::to_string(in.size()) +
                             " stored bytes end before the stream does");
  }
}

Status InflateZlibPrefix(std::span<const uint8_t> in, size_t prefix, std::vector<uint8_t>& out) {
  out.resize(prefix);
  z_stream z{};
  if (inflateInit(&z) != Z_OK) return Status::IOError("cannot allocate a zlib inflate stream");
  z.next_in = const_cast<Bytef*>(in.data());
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(prefix);
  int rc = prefix == 0 ? Z_OK : inflate(&z, Z_SYNC_FLUSH);
  const size_t got = prefix - z.avail_out;
  const char* why = z.msg;
  inflateEnd(&z);
  if ((rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR) && got == prefix) return Status::OK();
  if (rc == Z_STREAM_END) {
    return Status::Invalid("corrupt deflate stream: " + std::to_string(in.size()) +
                           " stored bytes inflate to only " + std::to_string(got) + " bytes");
  }
  if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT) {
    return Status::Invalid("corrupt deflate stream: " + std::to_string(in.size()) +
                           " stored bytes are not a valid zlib stream (" +
                           (why ? why : "bad data") + ")");
  }
  return Status::Invalid("corrupt deflate stream: " + std::to_string(in.size()) +
                         " stored bytes end before the stream does");
}

}  // namespace cellfeed::io::codec
