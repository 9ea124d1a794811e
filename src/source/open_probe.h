// Probing the opening of a collection's files in child processes before opening them
// here (io/hdf5/isolation.h): one probe per HDF5 file, several at once.
#pragma once

#include <string>
#include <vector>

#include "cellfeed/status.h"
#include "io/hdf5/isolation.h"

namespace cellfeed {

// OK when every file that libhdf5 would read opens in a probe without crashing, hanging
// or exceeding its memory; else the error of the first file (in order) that did not,
// naming it (and every other failing file's name, so one run reports them all).
// Directories (zarr stores) are not read with libhdf5 and are skipped.
// layers: one per path (the matrix each file is opened for).
Status ProbeOpens(const std::vector<std::string>& paths, const std::vector<std::string>& layers,
                  const io::IsolationLimits& limits);

}  // namespace cellfeed
