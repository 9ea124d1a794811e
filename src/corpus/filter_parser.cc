// Recursive-descent parser for filter expressions (grammar in corpus/filter.h).
#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "corpus/filter.h"

namespace cellfeed::corpus {

namespace {

struct Token {
  enum class Type : uint8_t { kEnd, kName, kNumber, kString, kOp, kPunct } type = Type::kEnd;
  std::string text;
  size_t at = 0;  // offset in the expression, for messages
};

class Parser {
 public:
  explicit Parser(const std::string& text) : text_(text) {}

  Result<std::unique_ptr<FilterNode>> Parse() {
    CF_RETURN_IF_ERROR(Tokenize());
    CF_ASSIGN_OR_RETURN(auto node, ParseOr());
    if (Peek().type != Token::Type::kEnd) return Error("unexpected '" + Peek().text + "'");
    return node;
  }

 private:
  Status Error(const std::string& what) const {
    const size_t at = pos_ < tokens_.size() ? tokens_[pos_].at : text_.size();
    return Status::Invalid("filter \"" + text_ + "\": " + what + " at character " +
                           std::to_string(at + 1));
  }

  Status Tokenize() {
    size_t i = 0;
    while (i < text_.size()) {
      const char c = text_[i];
      if (std::isspace(static_cast<unsigned char>(c))) {
        ++i;
        continue;
      }
      Token t;
      t.at = i;
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t j = i;
        while (j < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[j])) ||
                                    text_[j] == '_' || text_[j] == '.')) {
          ++j;
        }
        t.type = Token::Type::kName;
        t.text = text_.substr(i, j - i);
        i = j;
      } else if (c == '`') {
        const size_t j = text_.find('`', i + 1);
        if (j == std::string::npos) {
          pos_ = tokens_.size();
          return Status::Invalid("filter \"" + text_ + "\": unclosed ` at character " +
                                 std::to_string(i + 1));
        }
        t.type = Token::Type::kName;
        t.text = text_.substr(i + 1, j - i - 1);
        t.at = i;
        tokens_.push_back(t);
        tokens_.back().text.insert(0, "\x01");  // marks a quoted name: never a keyword
        i = j + 1;
        continue;
      } else if (c == '\'' || c == '"') {
        const size_t j = text_.find(c, i + 1);
        if (j == std::string::npos) {
          return Status::Invalid("filter \"" + text_ + "\": unclosed " + std::string(1, c) +
                                 " at character " + std::to_string(i + 1));
        }
        t.type = Token::Type::kString;
        t.text = text_.substr(i + 1, j - i - 1);
        i = j + 1;
      } else if (std::isdigit(static_cast<unsigned char>(c)) || c == '.' ||
                 ((c == '-' || c == '+') && i + 1 < text_.size() &&
                  (std::isdigit(static_cast<unsigned char>(text_[i + 1])) || text_[i + 1] == '.'))) {
        char* end = nullptr;
        std::strtod(text_.c_str() + i, &end);
        const size_t j = static_cast<size_t>(end - text_.c_str());
        if (j == i) return Status::Invalid("filter \"" + text_ + "\": bad number at character " + std::to_string(i + 1));
        t.type = Token::Type::kNumber;
        t.text = text_.substr(i, j - i);
        i = j;
      } else if (text_.compare(i, 2, "==") == 0 || text_.compare(i, 2, "!=") == 0 ||
                 text_.compare(i, 2, "<=") == 0 || text_.compare(i, 2, ">=") == 0) {
        t.type = Token::Type::kOp;
        t.text = text_.substr(i, 2);
        i += 2;
      } else if (c == '<' || c == '>') {
        t.type = Token::Type::kOp;
        t.text = std::string(1, c);
        ++i;
      } else if (c == '(' || c == ')' || c == '[' || c == ']' || c == ',') {
        t.type = Token::Type::kPunct;
        t.text = std::string(1, c);
        ++i;
      } else {
        return Status::Invalid("filter \"" + text_ + "\": unexpected character '" +
                               std::string(1, c) + "' at character " + std::to_string(i + 1) +
                               " (operators: == != < <= > >= in, not in, and, or, not)");
      }
      tokens_.push_back(std::move(t));
    }
    Token end;
    end.at = text_.size();
    tokens_.push_back(end);
    return Status::OK();
  }

  const Token& Peek(size_t ahead = 0) const {
    return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)];
  }
  bool IsKeyword(const Token& t, const char* word) const {
    return t.type == Token::Type::kName && t.text == word;
  }

  Result<std::unique_ptr<FilterNode>> ParseOr() {
    CF_ASSIGN_OR_RETURN(auto left, ParseAnd());
    while (IsKeyword(Peek(), "or")) {
      ++pos_;
      CF_ASSIGN_OR_RETURN(auto right, ParseAnd());
      auto node = std::make_unique<FilterNode>();
      node->kind = FilterNode::Kind::kOr;
      node->children.push_back(std::move(left));
      node->children.push_back(std::move(right));
      left = std::move(node);
    }
    return left;
  }

  Result<std::unique_ptr<FilterNode>> ParseAnd() {
    CF_ASSIGN_OR_RETURN(auto left, ParseUnary());
    while (IsKeyword(Peek(), "and")) {
      ++pos_;
      CF_ASSIGN_OR_RETURN(auto right, ParseUnary());
      auto node = std::make_unique<FilterNode>();
      node->kind = FilterNode::Kind::kAnd;
      node->children.push_back(std::move(left));
      node->children.push_back(std::move(right));
      left = std::move(node);
    }
    return left;
  }

  Result<std::unique_ptr<FilterNode>> ParseUnary() {
    if (IsKeyword(Peek(), "not")) {
      ++pos_;
      CF_ASSIGN_OR_RETURN(auto child, ParseUnary());
      auto node = std::make_unique<FilterNode>();
      node->kind = FilterNode::Kind::kNot;
      node->children.push_back(std::move(child));
      return node;
    }
    if (Peek().type == Token::Type::kPunct && Peek().text == "(") {
      ++pos_;
      CF_ASSIGN_OR_RETURN(auto inner, ParseOr());
      if (!(Peek().type == Token::Type::kPunct && Peek().text == ")")) return Error("expected ')'");
      ++pos_;
      return inner;
    }
    return ParseTest();
  }

  Result<Literal> ParseLiteral() {
    const Token& t = Peek();
    Literal lit;
    lit.text = t.text;
    if (t.type == Token::Type::kNumber) {
      lit.type = Literal::Type::kNumber;
      lit.number = std::strtod(t.text.c_str(), nullptr);
    } else if (t.type == Token::Type::kString) {
      lit.type = Literal::Type::kString;
    } else if (IsKeyword(t, "true") || IsKeyword(t, "True")) {
      lit.type = Literal::Type::kBool;
      lit.boolean = true;
    } else if (IsKeyword(t, "false") || IsKeyword(t, "False")) {
      lit.type = Literal::Type::kBool;
      lit.boolean = false;
    } else if (t.type == Token::Type::kName) {
      return Error("expected a value but found the name '" + t.text +
                   "' (quote strings: '" + t.text + "')");
    } else {
      return Error(t.type == Token::Type::kEnd ? "expected a value at the end"
                                               : "expected a value, found '" + t.text + "'");
    }
    ++pos_;
    return lit;
  }

  Result<std::unique_ptr<FilterNode>> ParseTest() {
    const Token& name = Peek();
    if (name.type != Token::Type::kName || IsKeyword(name, "and") || IsKeyword(name, "or") ||
        IsKeyword(name, "in")) {
      return Error(name.type == Token::Type::kEnd ? "expected a column name at the end"
                                                  : "expected a column name, found '" + name.text + "'");
    }
    auto node = std::make_unique<FilterNode>();
    node->column = name.text[0] == '\x01' ? name.text.substr(1) : name.text;
    ++pos_;
    const bool not_in = IsKeyword(Peek(), "not") && IsKeyword(Peek(1), "in");
    if (IsKeyword(Peek(), "in") || not_in) {
      pos_ += not_in ? 2 : 1;
      node->kind = FilterNode::Kind::kIn;
      node->negated = not_in;
      if (!(Peek().type == Token::Type::kPunct && Peek().text == "[")) return Error("expected '[' after 'in'");
      ++pos_;
      for (;;) {
        CF_ASSIGN_OR_RETURN(Literal lit, ParseLiteral());
        node->values.push_back(std::move(lit));
        if (Peek().type == Token::Type::kPunct && Peek().text == ",") {
          ++pos_;
          if (Peek().type == Token::Type::kPunct && Peek().text == "]") break;  // trailing comma
          continue;
        }
        break;
      }
      if (!(Peek().type == Token::Type::kPunct && Peek().text == "]")) return Error("expected ']'");
      ++pos_;
      return node;
    }
    if (Peek().type != Token::Type::kOp) {
      return Error("expected an operator (== != < <= > >= in, not in) after '" + node->column + "'");
    }
    const std::string op = Peek().text;
    node->op = op == "==" ? CompareOp::kEq : op == "!=" ? CompareOp::kNe : op == "<" ? CompareOp::kLt
             : op == "<=" ? CompareOp::kLe : op == ">" ? CompareOp::kGt : CompareOp::kGe;
    ++pos_;
    CF_ASSIGN_OR_RETURN(Literal lit, ParseLiteral());
    node->values.push_back(std::move(lit));
    return node;
  }

  const std::string& text_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
};

void CollectColumns(const FilterNode& node, std::vector<std::string>* out) {
  if (!node.column.empty() &&
      std::find(out->begin(), out->end(), node.column) == out->end()) {
    out->push_back(node.column);
  }
  for (const auto& c : node.children) CollectColumns(*c, out);
}

}  // namespace

Result<std::unique_ptr<FilterNode>> ParseFilter(const std::string& text) {
  Parser p(text);
  return p.Parse();
}

std::vector<std::string> FilterColumns(const FilterNode& node) {
  std::vector<std::string> out;
  CollectColumns(node, &out);
  return out;
}

}  // namespace cellfeed::corpus
