// A minimal streaming JSON writer for the CLI's --json output.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

namespace cellfeed::tools {

class JsonWriter {
 public:
  void BeginObject() { Open('{'); }
  void EndObject() { Close('}'); }
  void BeginArray() { Open('['); }
  void EndArray() { Close(']'); }
  void Key(const std::string& k) {
    Separate();
    out_ += Quote(k) + ":";
    after_key_ = true;
  }
  void String(const std::string& s) { Value(Quote(s)); }
  void Int(long long v) { Value(std::to_string(v)); }
  void Double(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    Value(buf);
  }
  void Bool(bool v) { Value(v ? "true" : "false"); }
  void IntArray(const std::vector<long long>& v) {
    BeginArray();
    for (long long x : v) Int(x);
    EndArray();
  }
  const std::string& str() const { return out_; }

  static std::string Quote(const std::string& s) {
    std::string q = "\"";
    for (unsigned char c : s) {
      if (c == '"' || c == '\\') {
        q += '\\';
        q += static_cast<char>(c);
      } else if (c < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        q += buf;
      } else {
        q += static_cast<char>(c);
      }
    }
    return q + "\"";
  }

 private:
  void Separate() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (!first_.empty() && !first_.back()) out_ += ",";
    if (!first_.empty()) first_.back() = false;
  }
  void Value(const std::string& v) {
    Separate();
    out_ += v;
  }
  void Open(char c) {
    Separate();
    out_ += c;
    first_.push_back(true);
  }
  void Close(char c) {
    out_ += c;
    first_.pop_back();
  }
  std::string out_;
  std::vector<bool> first_;
  bool after_key_ = false;
};

}  // namespace cellfeed::tools
