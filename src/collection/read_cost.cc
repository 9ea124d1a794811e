// Collection::MeasureReadCost: the floor a loader's throughput is compared with.
// Finding which chunks each row set needs is untimed; reading and decoding them runs as
// few parallel jobs on the collection's pool as memory allows, so the floor has almost
// no serial gaps a loader could hide by overlapping fetches.
//
// Where the bytes land matters on uncompressed data, where reading is a copy out of the
// page cache: into a small scratch buffer that stays in the CPU cache it runs ~1.3-1.5x
// faster than into memory a consumer could use. A loader must deliver every byte, so by
// default the replay copies uncompressed pieces into fetch-sized output buffers
// (pre-faulted and recycled, as the loader's are). Compressed chunks are decoded into
// per-thread scratch either way (their copy into an output is not counted).
#include <chrono>
#include <cstring>

#include "cellfeed/buffer.h"
#include "collection/collection_impl.h"

namespace cellfeed {

namespace {

// Row sets whose outputs together fit in this many bytes share one parallel job (and
// one output arena): larger jobs would only cost memory.
constexpr size_t kWaveBytes = size_t{256} << 20;

// Makes an unfiltered read deliver its pieces to consecutive output slots (numbered from
// 0; its base pointer is set later); returns the bytes it delivers. Compressed reads stay
// decode-only (0 bytes).
size_t Deliver(io::ArrayRead& r) {
  if (!r.layout->filters.empty()) return 0;
  r.discard_output = false;
  r.out_type = r.layout->dtype;  // straight copies: no conversion, no checks
  r.valid_below = -1;
  r.value_check = io::ValueCheck::kNone;
  int64_t dst = 0;
  for (io::Piece& p : r.pieces) {
    p.dst = dst;
    dst += p.count;
  }
  return static_cast<size_t>(dst * r.layout->row_elements()) * DTypeSize(r.layout->dtype);
}

size_t Align64(size_t n) { return (n + 63) / 64 * 64; }

}  // namespace

Result<ReadCost> Collection::MeasureReadCost(std::span<const std::vector<int64_t>> row_sets,
                                             ReplayDestination destination) const {
  ReadCost cost;
  // Untimed: which chunks each row set touches (its indptr entries, from the cache), and
  // where in its wave's arena each delivered read lands.
  std::vector<io::ArrayRead> reads;
  std::vector<size_t> slot;           // per read: its byte offset in the arena
  std::vector<size_t> wave_end;       // reads [wave_end[w-1], wave_end[w]) form wave w
  size_t arena_bytes = 0, wave_bytes = 0;
  for (const auto& rows : row_sets) {
    CF_RETURN_IF_ERROR(impl_->CheckRows(rows));
    const size_t first = reads.size();
    CF_RETURN_IF_ERROR(PlanDecodeOnly(*impl_, rows, reads));
    cost.cells += static_cast<int64_t>(rows.size());
    // Slots within the row set first, then the set placed in its wave.
    size_t set_bytes = 0;
    std::vector<size_t> set_slots(reads.size() - first, 0);
    if (destination == ReplayDestination::kFetchBuffers) {
      for (size_t i = first; i < reads.size(); ++i) {
        const size_t bytes = Deliver(reads[i]);
        set_slots[i - first] = set_bytes;
        set_bytes = Align64(set_bytes + bytes);
        cost.bytes_delivered += static_cast<int64_t>(bytes);
      }
    }
    if (wave_bytes > 0 && wave_bytes + set_bytes > kWaveBytes) {
      wave_end.push_back(first);
      wave_bytes = 0;
    }
    for (size_t& s : set_slots) s += wave_bytes;
    slot.insert(slot.end(), set_slots.begin(), set_slots.end());
    wave_bytes += set_bytes;
    arena_bytes = std::max(arena_bytes, wave_bytes);
  }
  wave_end.push_back(reads.size());
  Buffer<uint8_t> arena;
  ResizeForOverwrite(arena, arena_bytes);
  if (!arena.empty()) std::memset(arena.data(), 0, arena.size());  // fault the pages in, as a warm loader has
  for (size_t i = 0; i < reads.size(); ++i) {
    if (!reads[i].discard_output) reads[i].out = arena.data() + slot[i];
  }
  // Timed: the waves, each one parallel pass reading and decoding its chunks, once per
  // row set that touches them.
  io::ReadStats stats;
  const auto t0 = std::chrono::steady_clock::now();
  size_t begin = 0;
  for (size_t end : wave_end) {
    CF_RETURN_IF_ERROR(io::ReadArrays(std::span(reads).subspan(begin, end - begin),
                                      *impl_->pool, &stats));
    begin = end;
  }
  cost.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  cost.chunks = stats.chunks;
  cost.bytes_read = stats.bytes_read;
  cost.bytes_decoded = stats.bytes_decoded;
  return cost;
}

}  // namespace cellfeed
