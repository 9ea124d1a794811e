// Reads obs/var columns of one file for a list of rows (any order, repeats allowed).
// Numeric values, codes and masks go through ArrayReader (pread); strings through libhdf5.
#pragma once

#include <span>

#include "cellfeed/dataframe.h"
#include "h5ad/anndata_file.h"
#include "io/array_reader.h"
#include "util/thread_pool.h"

namespace cellfeed::h5ad {

Result<Column> ReadColumn(const AnnDataFile& file, const anndata::ColumnLayout& layout,
                          std::span<const int64_t> rows, util::ThreadPool& pool);
Result<std::vector<std::string>> ReadStringsAt(const io::H5File& h5, const std::string& dataset,
                                               std::span<const int64_t> rows);
// Index strings of a dataframe at `rows` (from the file, or from the index loaded at open).
Result<std::vector<std::string>> ReadIndexAt(const AnnDataFile& file, const anndata::DataFrameLayout& df,
                                             std::span<const int64_t> rows);
// A column loaded whole at open: its rows, gathered.
Column GatherRows(const Column& whole, std::span<const int64_t> rows);
// The same for a layout whose column was loaded whole (layout.whole), with its info.
Column GatherColumn(const anndata::ColumnLayout& layout, std::span<const int64_t> rows);
// A column's values and mask at `rows`, read by pread from `file` through the chunk
// tables of `layout`; categorical codes are checked against the categories. Strings
// are the caller's (HDF5 strings need libhdf5; zarr's are loaded whole at open).
Result<Column> ReadColumnArrays(const io::RandomAccessFile& file, const std::string& path,
                                const anndata::ColumnLayout& layout, std::span<const int64_t> rows,
                                util::ThreadPool& pool);
// Pieces that read `rows` into consecutive output rows, merging runs of consecutive rows.
std::vector<io::Piece> RowPieces(std::span<const int64_t> rows);

}  // namespace cellfeed::h5ad
