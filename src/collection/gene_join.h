// Mapping files with different genes onto one gene space.
//
// join "inner": genes present in every file, in the first file's order.
// join "outer": every gene of any file, in order of first appearance; absent genes are 0.
// explicit list: exactly those genes, in that order; others are dropped, absent ones 0.
// A file whose genes already equal the target needs no map (the fast path).
//
// Gene names that repeat within a file (Cell Ranger outputs, files indexed by symbol) are
// first made unique exactly as anndata's `var_names_make_unique()` does (the second "MED4"
// becomes "MED4-1"), the same for a file alone and in a collection; files are joined by
// those names (docs/FORMATS.md).
#pragma once

#include <optional>
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

// anndata.utils.make_index_unique(names, join="-"): later repeats get "-1", "-2", ...,
// skipping any name already taken. Returns nullopt when `names` are already unique.
std::optional<std::vector<std::string>> MakeNamesUnique(const std::vector<std::string>& names);

Result<GeneSpace> JoinGenes(const std::vector<std::string>& paths,
                            const std::vector<const std::vector<std::string>*>& file_genes,
                            const std::string& join, const std::vector<std::string>& genes);

}  // namespace cellfeed
