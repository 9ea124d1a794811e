// An h5ad file's dataframe element (obs, var, raw/var) in any layout, the anndata < 0.7
// compound dataset (h5ad only) included.
#pragma once

#include <string>

#include "anndata/dataframe_layout.h"
#include "cellfeed/status.h"
#include "io/hdf5/h5_file.h"

namespace cellfeed::h5ad {

// The dataframe `element` of an h5ad file, in any layout. `uns` names the group holding `<col>_categories` of a compound dataframe ("" = none).
Result<anndata::DataFrameLayout> ReadDataFrameLayout(const io::H5File& file, const std::string& element,
                                                     const std::string& uns = "");

}  // namespace cellfeed::h5ad
