// Telling a store's format from its content: HDF5 files (h5ad, Cell Ranger) start with
// the HDF5 signature (possibly after a user block); everything else is refused by the
// HDF5 reader with its own message.
#include "h5ad/anndata_file.h"
#include "source/anndata_source.h"

namespace cellfeed {

Result<std::unique_ptr<AnnDataSource>> OpenAnnDataSource(const std::string& path,
                                                         const std::string& layer) {
  CF_ASSIGN_OR_RETURN(auto f, h5ad::AnnDataFile::Open(path, layer));
  return std::unique_ptr<AnnDataSource>(std::move(f));
}

}  // namespace cellfeed
