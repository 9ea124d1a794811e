// `cellfeed`: the command-line front of the engine. CLI11 parses the command line into
// the options of one subcommand (tools/*_command.cc, one file each), which then runs.
// Usage errors exit 2 with a message that names what was wrong and what is valid
// (the command's options, the closest one to a mistyped name); `cellfeed COMMAND --help`
// and `cellfeed help COMMAND` print the command's options and exit 0.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "commands.h"

namespace {

// The subcommand the parse had reached when it stopped (the root if none).
const CLI::App* Reached(const CLI::App& root) {
  const CLI::App* at = &root;
  while (!at->get_subcommands().empty()) at = at->get_subcommands().front();
  return at;
}

std::string Who(const CLI::App& root, const CLI::App& at) {
  return &at == &root ? root.get_name() : root.get_name() + " " + at.get_name();
}

// "--json, --layer NAME, ...": the options `at` accepts, as its help writes them.
std::string OptionList(const CLI::App& at) {
  std::string out;
  for (const CLI::Option* o : at.get_options()) {
    if (!o->nonpositional()) continue;
    if (!out.empty()) out += ", ";
    out += o->get_name();
    if (!o->get_type_name().empty()) out += " " + o->get_type_name();
  }
  return out;
}

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// The valid option (or command) closest to a mistyped one, if it is close.
std::string Closest(const std::string& arg, const std::vector<std::string>& valid) {
  const std::string name = arg.substr(0, arg.find('='));
  std::string best;
  size_t best_d = std::max<size_t>(2, name.size() / 3) + 1;
  for (const std::string& v : valid) {
    const size_t d = EditDistance(name, v);
    if (d < best_d) best = v, best_d = d;
  }
  return best;
}

int UsageError(const CLI::App& root, const CLI::ParseError& e) {
  const CLI::App& at = *Reached(root);
  const std::string who = Who(root, at);
  std::vector<std::string> names;
  for (const CLI::Option* o : at.get_options()) {
    if (o->nonpositional()) names.push_back(o->get_name());
  }
  bool told = false;
  if (dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr) {
    for (const std::string& a : at.remaining(false)) {
      if (a.size() < 2 || a[0] != '-') continue;
      const std::string near = Closest(a, names);
      std::fprintf(stderr, "%s: unknown option '%s'%s\n", who.c_str(), a.c_str(),
                   near.empty() ? "" : (" (did you mean " + near + "?)").c_str());
      told = true;
    }
  }
  if (!told) {
    // CLI11 says "--rows: 1 required N missing" for a value left out
    std::string what = e.what();
    const size_t colon = what.find(": 1 required ");
    if (dynamic_cast<const CLI::ArgumentMismatch*>(&e) != nullptr && colon != std::string::npos &&
        what.size() > 8 && what.compare(what.size() - 8, 8, " missing") == 0) {
      const size_t type = colon + 13;
      what = what.substr(0, colon) + " needs a value (" + what.substr(type, what.size() - 8 - type) + ")";
    }
    std::fprintf(stderr, "%s: error: %s\n", who.c_str(), what.c_str());
  }
  if (&at != &root) std::fprintf(stderr, "valid options of %s: %s\n", who.c_str(), OptionList(at).c_str());
  std::fprintf(stderr, "(%s --help says more)\n", who.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace cellfeed::tools;
  CLI::App app{"cellfeed: inspect, validate and benchmark AnnData files (h5ad, zarr) for "
               "cellfeed's loader.\n`cellfeed COMMAND --help` describes each command's options.",
               "cellfeed"};
  app.require_subcommand(1);
  // A repeated option: the last one counts (as before CLI11; scripts append overrides).
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.set_version_flag("--version", CELLFEED_VERSION);
  const std::vector<Command> commands = {AddInspectCommand(app), AddCheckCommand(app),
                                         AddBenchCommand(app), AddCorpusCommand(app)};
  std::vector<std::string> names;
  for (const Command& c : commands) names.push_back(c.app->get_name());

  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "help") {  // `cellfeed help [COMMAND]`
    args.erase(args.begin());
    args.resize(std::min<size_t>(args.size(), 1));
    args.push_back("--help");
  }
  if (args.empty()) {
    std::cerr << app.help();
    return 2;
  }
  if (args[0][0] != '-' && std::find(names.begin(), names.end(), args[0]) == names.end()) {
    const std::string near = Closest(args[0], names);
    std::fprintf(stderr, "cellfeed: unknown command '%s'%s\ncommands: %s\n(cellfeed --help says more)\n",
                 args[0].c_str(), near.empty() ? "" : (" (did you mean " + near + "?)").c_str(),
                 CLI::detail::join(names, ", ").c_str());
    return 2;
  }
  std::reverse(args.begin(), args.end());  // CLI11 takes a vector in reverse order
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);  // prints the help of the command reached, exit 0
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return UsageError(app, e);
  }
  for (const Command& c : commands) {
    if (c.app->parsed()) return c.run();
  }
  std::cerr << app.help();
  return 2;
}
