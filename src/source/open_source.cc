// Telling a store's format from its content: a directory or a zip file is a zarr store;
// anything else goes to the HDF5 reader (h5ad, Cell Ranger), which checks the HDF5
// signature (possibly after a user block) and refuses other files with its own message.
#include "h5ad/anndata_file.h"
#include "source/anndata_source.h"
#include "zarr/anndata_store.h"

namespace cellfeed {

Result<std::unique_ptr<AnnDataSource>> OpenAnnDataSource(const std::string& path,
                                                         const std::string& layer) {
  if (zarr::LooksLikeZarr(path)) {
    CF_ASSIGN_OR_RETURN(auto z, zarr::ZarrAnnData::Open(path, layer));
    return std::unique_ptr<AnnDataSource>(std::move(z));
  }
  CF_ASSIGN_OR_RETURN(auto f, h5ad::AnnDataFile::Open(path, layer));
  return std::unique_ptr<AnnDataSource>(std::move(f));
}

Result<std::vector<std::string>> ExpandSourcePaths(const std::vector<std::string>& paths) {
  std::vector<std::string> out;
  for (const std::string& p : paths) {
    CF_ASSIGN_OR_RETURN(auto each, zarr::ExpandCollection(p));
    out.insert(out.end(), each.begin(), each.end());
  }
  return out;
}

}  // namespace cellfeed
