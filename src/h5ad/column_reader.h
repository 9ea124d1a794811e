// Reads obs/var columns of one file for a list of rows (any order, repeats allowed).
// Numeric values, codes and masks go through ArrayReader (pread); strings through libhdf5.
#pragma once

#include <span>

#include "cellfeed/dataframe.h"
#include "h5ad/anndata_file.h"
#include "io/array_reader.h"
#include "util/thread_pool.h"

namespace cellfeed::h5ad {

Result<Column> ReadColumn(const AnnDataFile& file, const ColumnLayout& layout,
                          std::span<const int64_t> rows, util::ThreadPool& pool);
Result<std::vector<std::string>> ReadStringsAt(const io::H5File& h5, const std::string& dataset,
                                               std::span<const int64_t> rows);
// Index strings of a dataframe at `rows` (from the file, or from the index loaded at open).
Result<std::vector<std::string>> ReadIndexAt(const AnnDataFile& file, const DataFrameLayout& df,
                                             std::span<const int64_t> rows);
// A column loaded whole at open: its rows, gathered.
Column GatherRows(const Column& whole, std::span<const int64_t> rows);
// Pieces that read `rows` into consecutive output rows, merging runs of consecutive rows.
std::vector<io::Piece> RowPieces(std::span<const int64_t> rows);

}  // namespace cellfeed::h5ad
