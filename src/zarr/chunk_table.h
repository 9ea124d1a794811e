// A zarr array as the engine's reader sees it (io::DatasetLayout): the codec chain as a
// filter pipeline and one location per chunk, found once at open. Unsharded: each chunk
// key's file (directory) or member (zip). Sharded (sharding_indexed): every shard's index
// is read and verified at open, and each inner chunk becomes a chunk of the layout, so
// a row range reads only the inner chunks it needs. Absent chunks, shards and empty
// inner chunks read as the fill value.
#pragma once

#include <string>
#include <vector>

#include "io/hdf5/dataset_layout.h"
#include "zarr/hierarchy.h"

namespace cellfeed::zarr {

Result<io::DatasetLayout> DescribeArray(const Hierarchy& h, const std::string& node,
                                        const ArrayMeta& meta);

// A whole 1-D vlen-utf8 string array, decoded at open (obs/var names, string columns,
// categories).
Result<std::vector<std::string>> ReadStringArray(const Hierarchy& h, const std::string& node,
                                                 const ArrayMeta& meta);

}  // namespace cellfeed::zarr
