// Columns of obs / var dataframes as read from AnnData files.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cellfeed/dtype.h"

namespace cellfeed {

enum class ColumnKind : uint8_t {
  kNumeric,         // int / uint / float array
  kBool,            // bool array
  kString,          // string-array
  kCategorical,     // codes (signed int, -1 = missing) + categories
  kNullableInt,     // nullable-integer: values + mask
  kNullableBool,    // nullable-boolean: values + mask
  kNullableString,  // nullable-string-array: strings + mask
};

std::string ColumnKindName(ColumnKind k);

struct ColumnInfo {
  std::string name;
  ColumnKind kind = ColumnKind::kNumeric;
  DType dtype = DType::kFloat64;  // numeric values, categorical codes, nullable values
};

struct Column {
  ColumnInfo info;
  int64_t length = 0;
  std::vector<uint8_t> values;       // length * DTypeSize(info.dtype) bytes, when numeric
  std::vector<std::string> strings;  // kString, kNullableString
  std::vector<uint8_t> mask;         // nullable kinds: 1 = missing
  std::shared_ptr<const Column> categories;  // kCategorical
  bool ordered = false;                       // kCategorical
};

}  // namespace cellfeed
