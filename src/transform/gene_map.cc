// Mapping a collection's genes onto a model's vocabulary, per file.
//
// Each file gene's identifier (var name or a var column) is matched to the vocabulary by
// the vocabulary's key kind: Ensembl IDs compare without their version suffix; a file
// that holds the other kind of identifier is translated through the Ensembl ID <-> symbol
// table (a symbol with several IDs maps to the one the vocabulary holds, and to nothing
// when it holds several). Several file genes may land on one vocabulary gene: their
// counts are summed when cells are gathered (as Geneformer does). A vocabulary gene no
// file gene reaches is absent for that file: zero, and flagged in the presence mask.
#include <algorithm>
#include <functional>
#include <string_view>
#include <unordered_map>

#include "cellfeed/collection.h"
#include "cellfeed/transform.h"

namespace cellfeed::transform {

size_t GeneMap::FileOf(int64_t row) const {
  auto it = std::upper_bound(file_offsets.begin(), file_offsets.end(), row);
  return static_cast<size_t>(it - file_offsets.begin()) - 1;
}

bool LooksLikeEnsemblId(const std::string& id) {
  // ENS, an optional species code of capitals, a feature letter (G, T, P, ...) and digits.
  if (id.size() < 5 || id.compare(0, 3, "ENS") != 0) return false;
  size_t i = 3;
  while (i < id.size() && id[i] >= 'A' && id[i] <= 'Z') ++i;
  if (i == 3 || i >= id.size()) return false;
  return id[i] >= '0' && id[i] <= '9';
}

std::string StripEnsemblVersion(const std::string& id) {
  if (!LooksLikeEnsemblId(id)) return id;
  size_t i = 3;
  while (i < id.size() && id[i] >= 'A' && id[i] <= 'Z') ++i;
  while (i < id.size() && id[i] >= '0' && id[i] <= '9') ++i;
  return id.substr(0, i);
}

namespace {

std::string Trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r' || s[b] == '\n')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r' || s[e - 1] == '\n')) --e;
  return s.substr(b, e - b);
}

std::string Examples(const std::vector<std::string>& names, size_t n) {
  std::string out;
  size_t shown = 0;
  for (const auto& g : names) {
    if (g.empty()) continue;
    if (shown == n) break;
    out += (shown ? ", '" : "'") + g + "'";
    ++shown;
  }
  return out;
}

}  // namespace

Result<GeneMap> MapGeneIds(const std::vector<std::string>& files,
                           const std::vector<std::vector<std::string>>& ids,
                           const std::vector<std::vector<int32_t>>& cols,
                           const std::vector<std::string>& col_names,
                           const std::vector<int64_t>& file_offsets, const VocabSpec& spec) {
  if (ids.size() != files.size() || cols.size() != files.size()) {
    return Status::Invalid("MapGeneIds: one identifier list and one column list per file");
  }
  const bool by_id = spec.key == GeneKey::kEnsembl;
  std::unordered_map<std::string, int32_t> vocab;
  for (size_t v = 0; v < spec.genes.size(); ++v) {
    const std::string g = Trim(spec.genes[v]);
    if (g.empty()) continue;
    vocab.emplace(by_id ? StripEnsemblVersion(g) : g, static_cast<int32_t>(v));
  }
  if (vocab.empty()) return Status::Invalid("the vocabulary holds no gene");
  std::unordered_map<std::string, std::string> symbol_of;
  std::unordered_map<std::string, std::vector<std::string>> ids_of;
  for (const auto& [id, symbol] : spec.id_symbol) {
    const std::string i = StripEnsemblVersion(Trim(id)), s = Trim(symbol);
    if (i.empty() || s.empty()) continue;
    symbol_of.emplace(i, s);
    ids_of[s].push_back(i);
  }
  auto lookup = [&](const std::string& raw, bool& translated) -> int32_t {
    translated = false;
    const std::string g = Trim(raw);
    if (g.empty()) return -1;
    const bool is_id = LooksLikeEnsemblId(g);
    if (is_id == by_id) {
      auto it = vocab.find(is_id ? StripEnsemblVersion(g) : g);
      return it == vocab.end() ? -1 : it->second;
    }
    if (is_id) {  // vocabulary of symbols, file of IDs
      auto s = symbol_of.find(StripEnsemblVersion(g));
      if (s == symbol_of.end()) return -1;
      auto it = vocab.find(s->second);
      translated = it != vocab.end();
      return translated ? it->second : -1;
    }
    auto c = ids_of.find(g);  // vocabulary of IDs, file of symbols
    if (c == ids_of.end()) return -1;
    int32_t found = -1;
    for (const std::string& id : c->second) {
      auto it = vocab.find(id);
      if (it == vocab.end() || it->second == found) continue;
      if (found >= 0) return -1;  // ambiguous: the symbol names several vocabulary genes
      found = it->second;
    }
    translated = found >= 0;
    return found;
  };

  GeneMap map;
  map.vocab_size = static_cast<int64_t>(spec.genes.size());
  map.n_cols = static_cast<int64_t>(col_names.size());
  map.files = files;
  map.col_names = col_names;
  map.file_offsets = file_offsets;
  const std::string source =
      spec.var_column.empty() ? "var names" : "var column '" + spec.var_column + "'";
  std::vector<size_t> hashes;  // of each distinct map
  for (size_t f = 0; f < files.size(); ++f) {
    if (ids[f].size() != cols[f].size()) {
      return Status::Invalid(files[f] + ": " + std::to_string(ids[f].size()) +
                             " gene identifiers for " + std::to_string(cols[f].size()) + " genes");
    }
    std::vector<int32_t> to_vocab(static_cast<size_t>(map.n_cols), -1);
    std::vector<uint8_t> present(static_cast<size_t>(map.vocab_size), 0);
    std::vector<int32_t> hits(static_cast<size_t>(map.vocab_size), 0);
    FileGeneReport rep;
    rep.file = files[f];
    std::vector<std::string> unmapped;
    for (size_t i = 0; i < ids[f].size(); ++i) {
      const int32_t c = cols[f][i];
      if (c < 0) continue;  // not in the collection's gene space
      if (c >= map.n_cols) return Status::Invalid(files[f] + ": gene column out of range");
      ++rep.file_genes;
      bool translated = false;
      const int32_t v = lookup(ids[f][i], translated);
      if (v < 0) {
        if (unmapped.size() < 5) unmapped.push_back(ids[f][i]);
        continue;
      }
      to_vocab[static_cast<size_t>(c)] = v;
      present[static_cast<size_t>(v)] = 1;
      ++hits[static_cast<size_t>(v)];
      ++rep.mapped;
      rep.translated += translated ? 1 : 0;
    }
    for (size_t v = 0; v < hits.size(); ++v) {
      if (hits[v] > 1) rep.summed += hits[v];
      if (!present[v] && !Trim(spec.genes[v]).empty()) ++rep.vocab_missing;
    }
    rep.unmapped_examples = unmapped;
    if (rep.mapped == 0) {
      std::vector<std::string> file_examples;
      for (size_t i = 0; i < ids[f].size() && file_examples.size() < 5; ++i)
        if (cols[f][i] >= 0) file_examples.push_back(ids[f][i]);
      return Status::Invalid(
          files[f] + ": none of its " + std::to_string(rep.file_genes) + " genes (" + source +
          ", e.g. " + Examples(file_examples, 5) + ") is in the vocabulary of " +
          std::to_string(vocab.size()) + (by_id ? " Ensembl IDs" : " gene symbols") + " (e.g. " +
          Examples(spec.genes, 5) + ")" +
          (spec.id_symbol.empty() ? "" : ", even through the Ensembl ID <-> symbol table") +
          "; map by the other identifier kind or name the var column that holds it");
    }
    // A map made for an earlier file, if one is equal (present follows from to_vocab);
    // compared by hash first, so thousands of files with different genes stay cheap.
    const size_t hash = std::hash<std::string_view>{}(std::string_view(
        reinterpret_cast<const char*>(to_vocab.data()), to_vocab.size() * sizeof(int32_t)));
    size_t same = 0;
    while (same < map.column_to_vocab.size() &&
           !(hashes[same] == hash && map.column_to_vocab[same] == to_vocab))
      ++same;
    if (same == map.column_to_vocab.size()) {
      map.column_to_vocab.push_back(std::move(to_vocab));
      map.present.push_back(std::move(present));
      hashes.push_back(hash);
    }
    map.map_of_file.push_back(static_cast<uint32_t>(same));
    map.reports.push_back(std::move(rep));
  }
  return map;
}

Result<GeneMap> MapGenes(const Collection& collection, const VocabSpec& spec) {
  std::vector<std::vector<std::string>> ids;
  std::vector<std::vector<int32_t>> cols;
  for (size_t f = 0; f < collection.files().size(); ++f) {
    CF_ASSIGN_OR_RETURN(auto names, collection.FileGeneIds(f, spec.var_column));
    ids.push_back(std::move(names));
    cols.push_back(collection.FileGeneColumns(f));
  }
  return MapGeneIds(collection.files(), ids, cols, collection.var_names(),
                    collection.file_offsets(), spec);
}

}  // namespace cellfeed::transform
