// Subcommands of the `cellfeed` program, one file each. Each adds itself to the root
// CLI11 app (its options, with descriptions, so `cellfeed COMMAND --help` documents it)
// and returns what runs it once the command line has been parsed into its options.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace cellfeed::tools {

struct Command {
  CLI::App* app;             // the subcommand, owned by the root app
  std::function<int()> run;  // the exit status: 0 ok, 1 a file or run failed
};

Command AddInspectCommand(CLI::App& root);
Command AddCheckCommand(CLI::App& root);
Command AddBenchCommand(CLI::App& root);
Command AddCorpusCommand(CLI::App& root);

}  // namespace cellfeed::tools
