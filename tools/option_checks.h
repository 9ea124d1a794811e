// Checks of option values, run by CLI11 on the text before it is converted: a bad value
// is a usage error (exit 2) that names the option (CLI11 puts its name first) and says
// what the value must be, before any file is opened.
#pragma once

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <string>

#include "cellfeed/collection.h"

namespace cellfeed::tools {

// An integer of at least `min`; `word` (if not empty) is accepted too (--block-size chunk).
inline CLI::Validator Integer(long long min, std::string word = "") {
  return CLI::Validator(
      [min, word](std::string& s) -> std::string {
        if (!word.empty() && s == word) return "";
        size_t used = 0;
        long long v = 0;
        try {
          v = std::stoll(s, &used);
        } catch (...) {
          used = 0;
        }
        const std::string what = word.empty() ? "an integer" : "an integer or '" + word + "'";
        if (s.empty() || used != s.size()) return "'" + s + "' is not " + what;
        if (v < min) return "'" + s + "' is less than " + std::to_string(min);
        return "";
      },
      "");
}

// A finite number of at least `min` (seconds).
inline CLI::Validator Number(double min) {
  return CLI::Validator(
      [min](std::string& s) -> std::string {
        size_t used = 0;
        double v = 0;
        try {
          v = std::stod(s, &used);
        } catch (...) {
          used = 0;
        }
        if (s.empty() || used != s.size() || !std::isfinite(v)) return "'" + s + "' is not a number";
        if (v < min) {
          char buf[32];
          std::snprintf(buf, sizeof buf, "%g", min);
          return "'" + s + "' is less than " + buf;
        }
        return "";
      },
      "");
}

// The open options check and bench share: --layer, --values, --threads. `verb` says what
// the command does with the matrix ("read", "check").
inline void AddOpenOptions(CLI::App* app, OpenOptions& o, const std::string& verb) {
  app->add_option("--layer", o.layer, "the matrix to " + verb + ": 'raw' (raw/X), a layers/ name; default X")
      ->type_name("NAME");
  app->add_option("--values", o.values,
                  "what X's values must be: finite (no NaN/inf), counts (also non-negative "
                  "integers), any")
      ->type_name("finite|counts|any")
      ->check(CLI::IsMember({"finite", "counts", "any"}).description(""))
      ->capture_default_str();
  app->add_option("--threads", o.threads, "worker threads for reads; 0: one per hardware thread")
      ->type_name("N")
      ->check(Integer(0))
      ->capture_default_str();
}

}  // namespace cellfeed::tools
