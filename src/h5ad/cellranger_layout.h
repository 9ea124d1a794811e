// Cell Ranger HDF5 feature-barcode matrices, read as AnnData: obs = barcodes, var =
// features. Cell Ranger stores genes x barcodes as CSC, which is exactly CSR over cells
// (indptr has one entry per barcode + 1, indices are gene indices), so X is read by the
// same pread path as any csr_matrix, with no transposition.
//   v3 (Cell Ranger >= 3): matrix/{data,indices,indptr,shape,barcodes},
//     matrix/features/{id,name,feature_type,genome,...}.
//   v1/v2: <genome>/{data,indices,indptr,shape,barcodes,genes,gene_names}.
// Names as scanpy.read_10x_h5 gives them: var_names = feature (gene) names, var columns
// gene_ids, feature_types and the other features/* datasets. Unlike scanpy's default
// (gex_only=True), every feature type is kept.
#pragma once

#include <string>

#include "anndata/dataframe_layout.h"
#include "anndata/matrix_layout.h"
#include "io/hdf5/h5_file.h"

namespace cellfeed::h5ad {

struct CellRangerLayout {
  anndata::MatrixLayout matrix;
  anndata::DataFrameLayout obs, var;
};

// Whether the file is a Cell Ranger matrix (no AnnData obs; a matrix/ group, or genome
// groups holding barcodes and genes).
bool IsCellRanger(const io::H5File& file);

// `genome` selects the genome group of a v1/v2 file holding several ("" = the only one);
// for v3 it must be "" (all features are in one matrix).
Result<CellRangerLayout> ReadCellRangerLayout(const io::H5File& file, const std::string& genome);

}  // namespace cellfeed::h5ad
