// Three-valued evaluation of filter expressions over obs columns (corpus/filter.h).
//
// A test on a categorical column is evaluated once per category and then looked up by
// code, so a filter over 100M cells costs one pass over the codes. Tests that can only
// select nothing by mistake are errors: a category or string value that no cell has, a
// string compared with a number, an order comparison of unordered strings.
#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "corpus/filter.h"

namespace cellfeed::corpus {

namespace {

bool IsBoolColumn(const Column& c) {
  return c.info.kind == ColumnKind::kBool || c.info.kind == ColumnKind::kNullableBool ||
         (c.info.kind == ColumnKind::kNumeric && c.info.dtype == DType::kBool);
}

std::string KindText(const Column& c) {
  if (IsBoolColumn(c)) return "boolean";
  switch (c.info.kind) {
    case ColumnKind::kCategorical: return "categorical";
    case ColumnKind::kString:
    case ColumnKind::kNullableString: return "string";
    default: return "numeric (" + DTypeName(c.info.dtype) + ")";
  }
}

std::string LiteralText(const Literal& l) {
  switch (l.type) {
    case Literal::Type::kString: return "the string '" + l.text + "'";
    case Literal::Type::kBool: return std::string("the boolean ") + (l.boolean ? "true" : "false");
    default: return "the number " + l.text;
  }
}

std::vector<double> AsDoubles(const Column& c) {
  std::vector<double> v(static_cast<size_t>(c.length));
  if (c.length > 0) ConvertElements(c.info.dtype, c.values.data(), DType::kFloat64, v.data(), v.size());
  return v;
}

uint8_t CompareNumbers(double x, CompareOp op, double y) {
  if (std::isnan(x)) return kUnknown;
  bool r = false;
  switch (op) {
    case CompareOp::kEq: r = x == y; break;
    case CompareOp::kNe: r = x != y; break;
    case CompareOp::kLt: r = x < y; break;
    case CompareOp::kLe: r = x <= y; break;
    case CompareOp::kGt: r = x > y; break;
    case CompareOp::kGe: r = x >= y; break;
  }
  return r ? kTrue : kFalse;
}

// The truth of one test for a value given as a number or a string.
struct Test {
  const FilterNode* node;
  uint8_t OnNumber(double x) const {
    if (node->kind == FilterNode::Kind::kCompare) return CompareNumbers(x, node->op, node->values[0].number);
    if (std::isnan(x)) return kUnknown;
    bool in = false;
    for (const Literal& l : node->values) in = in || l.number == x;
    return in != node->negated ? kTrue : kFalse;
  }
  uint8_t OnString(const std::string& s) const {
    if (node->kind == FilterNode::Kind::kCompare) {
      const bool eq = s == node->values[0].text;
      return (node->op == CompareOp::kEq) == eq ? kTrue : kFalse;
    }
    bool in = false;
    for (const Literal& l : node->values) in = in || l.text == s;
    return in != node->negated ? kTrue : kFalse;
  }
};

std::string Quoted(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& x : v) out += (out.empty() ? "'" : ", '") + x + "'";
  return out;
}

class Evaluator {
 public:
  Evaluator(ColumnSource& columns, StringPresence* presence) : columns_(columns), presence_(presence) {}

  Result<std::vector<uint8_t>> Eval(const FilterNode& node) {
    switch (node.kind) {
      case FilterNode::Kind::kAnd:
      case FilterNode::Kind::kOr: {
        CF_ASSIGN_OR_RETURN(auto a, Eval(*node.children[0]));
        CF_ASSIGN_OR_RETURN(auto b, Eval(*node.children[1]));
        const bool is_and = node.kind == FilterNode::Kind::kAnd;
        for (size_t i = 0; i < a.size(); ++i) {
          const uint8_t x = a[i], y = b[i];
          if (is_and) {
            a[i] = (x == kFalse || y == kFalse) ? kFalse : (x == kTrue && y == kTrue) ? kTrue : kUnknown;
          } else {
            a[i] = (x == kTrue || y == kTrue) ? kTrue : (x == kFalse && y == kFalse) ? kFalse : kUnknown;
          }
        }
        return a;
      }
      case FilterNode::Kind::kNot: {
        CF_ASSIGN_OR_RETURN(auto a, Eval(*node.children[0]));
        for (uint8_t& x : a) x = x == kTrue ? kFalse : x == kFalse ? kTrue : kUnknown;
        return a;
      }
      default:
        return EvalTest(node);
    }
  }

 private:
  Status TypeError(const Column& c, const FilterNode& node, const std::string& why) const {
    return Status::Invalid("filter on obs column '" + node.column + "' in " + columns_.where() +
                           ": the column is " + KindText(c) + "; " + why);
  }

  // Checks that the literals fit the column's kind.
  Status CheckLiterals(const Column& c, const FilterNode& node, bool strings) const {
    const bool order = node.kind == FilterNode::Kind::kCompare && node.op != CompareOp::kEq &&
                       node.op != CompareOp::kNe;
    for (const Literal& l : node.values) {
      if (IsBoolColumn(c)) {
        if (l.type != Literal::Type::kBool) return TypeError(c, node, "compare it with true or false, not " + LiteralText(l));
        if (order) return TypeError(c, node, "booleans take == != in, not an order comparison");
      } else if (strings) {
        if (l.type != Literal::Type::kString) return TypeError(c, node, "compare it with a quoted string, not " + LiteralText(l));
        if (order) return TypeError(c, node, "strings take == != in / not in, not an order comparison");
      } else if (l.type != Literal::Type::kNumber) {
        return TypeError(c, node, "compare it with a number, not " + LiteralText(l));
      }
    }
    return Status::OK();
  }

  // A string value that no cell has would silently select nothing (or everything).
  Status CheckPresent(const FilterNode& node, const std::vector<std::string>& values,
                      const std::string& what) const {
    std::unordered_set<std::string> have(values.begin(), values.end());
    for (const Literal& l : node.values) {
      if (have.count(l.text) != 0) continue;
      const std::string near = Quoted(NearestValues(l.text, values));
      return Status::Invalid("filter on obs column '" + node.column + "' in " + columns_.where() +
                             ": no cell has the " + what + " '" + l.text + "'" +
                             (near.empty() ? "" : " (nearest existing values: " + near + ")"));
    }
    return Status::OK();
  }

  Result<std::vector<uint8_t>> EvalTest(const FilterNode& node) {
    CF_ASSIGN_OR_RETURN(const Column* col, columns_.Get(node.column));
    const Column& c = *col;
    const size_t n = static_cast<size_t>(columns_.length());
    std::vector<uint8_t> out(n, kFalse);
    const Test test{&node};
    if (c.info.kind == ColumnKind::kCategorical) {
      const Column& cats = *c.categories;
      const bool strings = !cats.strings.empty() || cats.info.kind == ColumnKind::kString ||
                           cats.info.kind == ColumnKind::kNullableString;
      CF_RETURN_IF_ERROR(CheckLiterals(cats, node, strings));
      std::vector<uint8_t> per_code(static_cast<size_t>(cats.length));
      if (strings) {
        CF_RETURN_IF_ERROR(CheckPresent(node, cats.strings, "category"));
        for (size_t k = 0; k < per_code.size(); ++k) per_code[k] = test.OnString(cats.strings[k]);
      } else {
        const std::vector<double> v = AsDoubles(cats);
        for (size_t k = 0; k < per_code.size(); ++k) per_code[k] = test.OnNumber(v[k]);
      }
      std::vector<int64_t> codes(n);
      if (n > 0) ConvertElements(c.info.dtype, c.values.data(), DType::kInt64, codes.data(), n);
      for (size_t i = 0; i < n; ++i) {
        const int64_t k = codes[i];
        out[i] = (k < 0 || k >= cats.length) ? kUnknown : per_code[static_cast<size_t>(k)];
      }
      return out;
    }
    const bool strings = c.info.kind == ColumnKind::kString || c.info.kind == ColumnKind::kNullableString;
    CF_RETURN_IF_ERROR(CheckLiterals(c, node, strings));
    if (strings) {
      std::unordered_set<std::string> distinct;
      for (size_t i = 0; i < n; ++i) {
        if (c.mask.empty() || !c.mask[i]) distinct.insert(c.strings[i]);
      }
      if (presence_ != nullptr) {
        auto& seen = presence_->seen[node.column];
        for (const Literal& l : node.values) {
          if (distinct.count(l.text)) {
            seen.insert(l.text);
          } else if (!seen.count(l.text) && !presence_->unseen[node.column].count(l.text)) {
            presence_->unseen[node.column][l.text] =
                NearestValues(l.text, std::vector<std::string>(distinct.begin(), distinct.end()));
          }
        }
      } else {
        CF_RETURN_IF_ERROR(CheckPresent(node, std::vector<std::string>(distinct.begin(), distinct.end()), "value"));
      }
      for (size_t i = 0; i < n; ++i) {
        out[i] = (!c.mask.empty() && c.mask[i]) ? kUnknown : test.OnString(c.strings[i]);
      }
      return out;
    }
    Test numeric = test;
    FilterNode as_numbers;  // booleans compare as 0/1
    if (IsBoolColumn(c)) {
      as_numbers.kind = node.kind;
      as_numbers.op = node.op;
      as_numbers.negated = node.negated;
      for (const Literal& l : node.values) {
        Literal x = l;
        x.type = Literal::Type::kNumber;
        x.number = l.boolean ? 1 : 0;
        as_numbers.values.push_back(x);
      }
      numeric.node = &as_numbers;
    }
    const std::vector<double> v = AsDoubles(c);
    for (size_t i = 0; i < n; ++i) {
      out[i] = (!c.mask.empty() && c.mask[i]) ? kUnknown : numeric.OnNumber(v[i]);
    }
    return out;
  }

  ColumnSource& columns_;
  StringPresence* presence_;
};

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                        std::tolower(static_cast<unsigned char>(b[j - 1]));
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (same ? 0 : 1)});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

Result<std::vector<uint8_t>> EvaluateFilter(const FilterNode& node, ColumnSource& columns,
                                            StringPresence* presence) {
  Evaluator e(columns, presence);
  return e.Eval(node);
}

Status StringPresence::Check(const std::string& where) const {
  for (const auto& [column, values] : unseen) {
    const auto it = seen.find(column);
    for (const auto& [value, near] : values) {
      if (it != seen.end() && it->second.count(value)) continue;
      return Status::Invalid("filter on obs column '" + column + "' in " + where + ": no cell has the value '" +
                             value + "'" + (near.empty() ? "" : " (nearest existing values: " + Quoted(near) + ")"));
    }
  }
  return Status::OK();
}

std::vector<std::string> NearestValues(const std::string& value,
                                       const std::vector<std::string>& candidates, size_t limit) {
  std::vector<std::pair<size_t, std::string>> scored;
  for (const std::string& c : candidates) scored.emplace_back(EditDistance(value, c), c);
  std::sort(scored.begin(), scored.end());
  std::vector<std::string> out;
  for (size_t i = 0; i < scored.size() && i < limit; ++i) out.push_back(scored[i].second);
  return out;
}

}  // namespace cellfeed::corpus
