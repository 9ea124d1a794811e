// Everything needed to read a dataset without libhdf5: where its bytes are and how
// they are encoded. Built once at open time by H5File::Describe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cellfeed/dtype.h"
#include "io/codec/filter_pipeline.h"
#include "io/file_set.h"

#include <memory>

namespace cellfeed::io {

constexpr uint64_t kNoAddress = ~uint64_t{0};

struct ChunkLocation {
  uint64_t address = kNoAddress;  // absolute file offset; kNoAddress = never written (fill)
  uint64_t stored_size = 0;       // bytes on disk (after filters)
  uint32_t filter_mask = 0;       // bit i set: filter i skipped for this chunk
  uint32_t file = 0;              // with DatasetLayout::files: which of them holds it
};

struct DatasetLayout {
  std::string file_path;
  std::string name;  // HDF5 path inside the file, e.g. "X/indices"
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;        // 1-D or 2-D
  std::vector<int64_t> chunk_shape;  // same rank as shape; for contiguous: virtual chunks
  codec::FilterPipeline filters;
  // One entry per chunk, row-major over the chunk grid.
  std::vector<ChunkLocation> chunks;
  bool chunked = false;             // false: contiguous, chunks are virtual slices
  std::vector<uint8_t> fill_value;  // one element
  std::vector<uint8_t> compact_bytes;  // whole dataset, when stored in the object header
  // Set when chunks live in many files (zarr directory stores): a chunk's bytes are in
  // files->Get(location.file), not in the read's file.
  std::shared_ptr<const FileSet> files;

  int64_t length() const { return shape.empty() ? 1 : shape[0]; }
  int64_t row_elements() const { return shape.size() > 1 ? shape[1] : 1; }
  int64_t num_chunks_along(int dim) const {
    return chunk_shape[dim] == 0 ? 0 : (shape[dim] + chunk_shape[dim] - 1) / chunk_shape[dim];
  }
  size_t chunk_bytes() const;  // decoded size of one full chunk
  std::string Where() const { return file_path + ": " + name; }
};

}  // namespace cellfeed::io
