#include "h5ad/column_reader.h"

#include <algorithm>

#include "io/array_reader.h"

namespace cellfeed::h5ad {

std::vector<io::Piece> RowPieces(std::span<const int64_t> rows) {
  std::vector<io::Piece> pieces;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (!pieces.empty() && pieces.back().src + pieces.back().count == rows[i]) {
      ++pieces.back().count;
    } else {
      pieces.push_back({rows[i], 1, static_cast<int64_t>(i)});
    }
  }
  return pieces;
}

Result<std::vector<std::string>> ReadStringsAt(const io::H5File& h5, const std::string& dataset,
                                               std::span<const int64_t> rows) {
  std::vector<std::string> out;
  if (rows.empty()) return out;
  auto [lo, hi] = std::minmax_element(rows.begin(), rows.end());
  CF_ASSIGN_OR_RETURN(auto span, h5.ReadStrings(dataset, std::make_pair(*lo, *hi + 1)));
  out.reserve(rows.size());
  for (int64_t r : rows) out.push_back(span[static_cast<size_t>(r - *lo)]);
  return out;
}

Result<std::vector<std::string>> ReadIndexAt(const AnnDataFile& f, const anndata::DataFrameLayout& df,
                                             std::span<const int64_t> rows) {
  if (!df.index_values) return ReadStringsAt(f.h5(), df.index_dataset, rows);
  std::vector<std::string> out;
  out.reserve(rows.size());
  for (int64_t r : rows) out.push_back((*df.index_values)[static_cast<size_t>(r)]);
  return out;
}

Column GatherRows(const Column& whole, std::span<const int64_t> rows) {
  Column out;
  out.info = whole.info;
  out.length = static_cast<int64_t>(rows.size());
  out.categories = whole.categories;
  out.ordered = whole.ordered;
  const size_t esize = whole.values.empty() ? 0 : DTypeSize(whole.info.dtype);
  if (esize) out.values.resize(rows.size() * esize);
  if (!whole.mask.empty()) out.mask.resize(rows.size());
  if (!whole.strings.empty()) out.strings.reserve(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    const size_t r = static_cast<size_t>(rows[i]);
    if (esize) std::copy_n(whole.values.data() + r * esize, esize, out.values.data() + i * esize);
    if (!whole.mask.empty()) out.mask[i] = whole.mask[r];
    if (!whole.strings.empty()) out.strings.push_back(whole.strings[r]);
  }
  return out;
}

Column GatherColumn(const anndata::ColumnLayout& c, std::span<const int64_t> rows) {
  Column out = GatherRows(*c.whole, rows);
  out.info = c.info;
  out.categories = c.categories;
  out.ordered = c.ordered;
  return out;
}

Result<Column> ReadColumnArrays(const io::RandomAccessFile& file, const std::string& path,
                                const anndata::ColumnLayout& c, std::span<const int64_t> rows,
                                util::ThreadPool& pool) {
  Column out;
  out.info = c.info;
  out.length = static_cast<int64_t>(rows.size());
  out.categories = c.categories;
  out.ordered = c.ordered;
  std::vector<io::ArrayRead> reads;
  const std::vector<io::Piece> pieces = RowPieces(rows);
  if (c.values) {
    out.values.resize(rows.size() * DTypeSize(c.info.dtype));
    reads.push_back({&*c.values, &file, pieces, c.info.dtype, out.values.data()});
  }
  if (c.mask) {
    out.mask.resize(rows.size());
    reads.push_back({&*c.mask, &file, pieces, DType::kBool, out.mask.data()});
  }
  CF_RETURN_IF_ERROR(io::ReadArrays(reads, pool));
  if (c.info.kind == ColumnKind::kCategorical) {
    // Codes must index the categories; -1 means missing.
    std::vector<int64_t> codes(rows.size());
    ConvertElements(c.info.dtype, out.values.data(), DType::kInt64, codes.data(), codes.size());
    const int64_t n_cat = c.categories->length;
    for (size_t i = 0; i < codes.size(); ++i) {
      if (codes[i] < -1 || codes[i] >= n_cat) {
        return Status::Invalid(path + ": " + c.node + "/codes: code " +
                               std::to_string(codes[i]) + " at row " + std::to_string(rows[i]) +
                               " is outside [-1, " + std::to_string(n_cat) + ")");
      }
    }
  }
  return out;
}

Result<Column> ReadColumn(const AnnDataFile& f, const anndata::ColumnLayout& c,
                          std::span<const int64_t> rows, util::ThreadPool& pool) {
  if (c.whole) return GatherColumn(c, rows);
  // The chunk table and strings read below describe the file as it was at open.
  CF_RETURN_IF_ERROR(f.file().CheckUnchanged());
  CF_RETURN_IF_ERROR(f.h5().CheckUnchanged());
  CF_ASSIGN_OR_RETURN(Column out, ReadColumnArrays(f.file(), f.path(), c, rows, pool));
  if (!c.strings.empty()) {
    CF_ASSIGN_OR_RETURN(out.strings, ReadStringsAt(f.h5(), c.strings, rows));
  }
  return out;
}

}  // namespace cellfeed::h5ad
