// Filter expressions over obs columns: parsing and evaluation.
//
// Grammar (docs/CORPUS.md):
//   expr    := or
//   or      := and ("or" and)*
//   and     := unary ("and" unary)*
//   unary   := "not" unary | "(" expr ")" | test
//   test    := column op literal | column ["not"] "in" "[" literal ("," literal)* "]"
//   op      := == != < <= > >=
//   column  := identifier | `any name in backquotes`
//   literal := number | 'string' | "string" | true | false
// Evaluation is three-valued: a missing value (NaN, a masked nullable value, a
// categorical code of -1) makes its test unknown, `not` keeps unknown unknown, and only
// cells whose whole expression is true are selected: missing values never match.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "cellfeed/dataframe.h"
#include "cellfeed/status.h"

namespace cellfeed::corpus {

struct Literal {
  enum class Type : uint8_t { kNumber, kString, kBool } type = Type::kNumber;
  double number = 0;
  std::string text;  // kString; also the literal as written, for messages
  bool boolean = false;
};

enum class CompareOp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe };

struct FilterNode {
  enum class Kind : uint8_t { kAnd, kOr, kNot, kCompare, kIn } kind = Kind::kCompare;
  std::vector<std::unique_ptr<FilterNode>> children;  // and / or / not
  std::string column;                                 // compare / in
  CompareOp op = CompareOp::kEq;                      // compare
  bool negated = false;                               // "not in"
  std::vector<Literal> values;                        // compare: one; in: the list
};

Result<std::unique_ptr<FilterNode>> ParseFilter(const std::string& text);
// Every column the expression names, once each, in order of appearance.
std::vector<std::string> FilterColumns(const FilterNode& node);

// Truth of a filter for each cell: 0 false, 1 true, 2 unknown (a missing value).
enum : uint8_t { kFalse = 0, kTrue = 1, kUnknown = 2 };

// Looks up a column's values for the cells being filtered.
struct ColumnSource {
  virtual ~ColumnSource() = default;
  virtual Result<const Column*> Get(const std::string& name) = 0;
  virtual int64_t length() const = 0;
  virtual std::string where() const = 0;  // for messages: the files the cells come from
};

// String values of tests on plain string columns, tracked across the files of a source
// evaluated one at a time: a value may be absent from one file and present in another,
// and only a value that no file has is an error (categories are checked at once: their
// list is already merged across files).
struct StringPresence {
  std::map<std::string, std::set<std::string>> seen;  // column -> values seen in some file
  // column -> value -> nearest values of a file that lacked it
  std::map<std::string, std::map<std::string, std::vector<std::string>>> unseen;
  // The first value no file had, as an error naming `where`.
  Status Check(const std::string& where) const;
};

// Evaluates `node` for every cell; errors name the column, the files and what was
// expected. Without `presence`, a string value absent from these cells is an error at once.
Result<std::vector<uint8_t>> EvaluateFilter(const FilterNode& node, ColumnSource& columns,
                                            StringPresence* presence = nullptr);

// The `limit` values of `candidates` closest to `value` (edit distance), for messages.
std::vector<std::string> NearestValues(const std::string& value,
                                       const std::vector<std::string>& candidates, size_t limit = 3);

}  // namespace cellfeed::corpus
