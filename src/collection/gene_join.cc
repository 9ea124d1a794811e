#include "collection/gene_join.h"

#include <unordered_map>
#include <unordered_set>

namespace cellfeed {

namespace {

Status CheckUnique(const std::vector<std::string>& names, const std::string& where) {
  std::unordered_set<std::string> seen;
  for (const auto& g : names) {
    if (!seen.insert(g).second) {
      return Status::Invalid(where + ": gene name '" + g +
                             "' appears more than once, so genes cannot be joined by name");
    }
  }
  return Status::OK();
}

}  // namespace

std::optional<std::vector<std::string>> MakeNamesUnique(const std::vector<std::string>& names) {
  std::unordered_set<std::string> taken;
  std::vector<size_t> repeats;  // positions of the second and later occurrences
  for (size_t i = 0; i < names.size(); ++i) {
    if (!taken.insert(names[i]).second) repeats.push_back(i);
  }
  if (repeats.empty()) return std::nullopt;
  std::vector<std::string> out = names;
  std::unordered_map<std::string, int64_t> counter;
  for (size_t i : repeats) {
    const std::string& v = names[i];
    while (true) {
      std::string candidate = v + "-" + std::to_string(++counter[v]);
      if (taken.insert(candidate).second) {
        out[i] = std::move(candidate);
        break;
      }
    }
  }
  return out;
}

Result<GeneSpace> JoinGenes(const std::vector<std::string>& paths,
                            const std::vector<const std::vector<std::string>*>& file_genes,
                            const std::string& join, const std::vector<std::string>& genes) {
  GeneSpace space;
  const size_t nfiles = file_genes.size();
  bool all_equal = true;
  for (size_t f = 1; f < nfiles; ++f) all_equal = all_equal && *file_genes[f] == *file_genes[0];

  if (join == "inner" || join == "outer") {
    if (all_equal) {
      space.var_names = *file_genes[0];
      space.maps.resize(nfiles);
      space.order_preserving.assign(nfiles, true);
      return space;
    }
    if (join == "inner") {
      std::unordered_map<std::string, size_t> count;
      for (size_t f = 0; f < nfiles; ++f)
        for (const auto& g : *file_genes[f]) ++count[g];
      for (const auto& g : *file_genes[0])
        if (count[g] == nfiles) space.var_names.push_back(g);
      if (space.var_names.empty()) {
        std::string files;
        for (size_t f = 0; f < nfiles; ++f) {
          files += (f ? ", " : "") + paths[f] + " (" + std::to_string(file_genes[f]->size()) +
                   " genes)";
        }
        return Status::Invalid("join='inner': no gene is common to all " +
                               std::to_string(nfiles) + " files: " + files +
                               "; use join='outer' or a gene list");
      }
    } else {
      std::unordered_set<std::string> seen;
      for (size_t f = 0; f < nfiles; ++f)
        for (const auto& g : *file_genes[f])
          if (seen.insert(g).second) space.var_names.push_back(g);
    }
  } else if (join == "genes") {
    CF_RETURN_IF_ERROR(CheckUnique(genes, "the gene list"));
    space.var_names = genes;
  } else {
    return Status::Invalid("join must be 'inner', 'outer' or a gene list, got '" + join + "'");
  }

  std::unordered_map<std::string, int32_t> target;
  for (size_t i = 0; i < space.var_names.size(); ++i) {
    target.emplace(space.var_names[i], static_cast<int32_t>(i));
  }
  space.maps.resize(nfiles);
  space.order_preserving.assign(nfiles, true);
  for (size_t f = 0; f < nfiles; ++f) {
    if (*file_genes[f] == space.var_names) continue;  // identity
    auto& map = space.maps[f];
    map.reserve(file_genes[f]->size());
    for (const auto& g : *file_genes[f]) {
      auto it = target.find(g);
      map.push_back(it == target.end() ? -1 : it->second);
    }
    int32_t last = -1;
    for (int32_t c : map) {
      if (c < 0) continue;
      if (c < last) space.order_preserving[f] = false;
      last = c;
    }
  }
  return space;
}

}  // namespace cellfeed
