// Mapping files with different genes onto one gene space.
//
// join "inner": genes present in every file, in the first file's order.
// join "outer": every gene of any file, in order of first appearance; absent genes are 0.
// explicit list: exactly those genes, in that order; others are dropped, absent ones 0.
// A file whose genes already equal the target needs no map (the fast path).
#pragma once

#include <string>
#include <vector>

#include "cellfeed/status.h"

namespace cellfeed {

struct GeneSpace {
  std::vector<std::string> var_names;
  // Per file: file gene index -> target column, -1 = dropped. Empty = identity.
  std::vector<std::vector<int32_t>> maps;
  // Per file: the map keeps column order, so mapped rows need no re-sorting.
  std::vector<bool> order_preserving;
};

Result<GeneSpace> JoinGenes(const std::vector<std::string>& paths,
                            const std::vector<const std::vector<std::string>*>& file_genes,
                            const std::string& join, const std::vector<std::string>& genes);

}  // namespace cellfeed
