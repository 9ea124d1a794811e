// Subcommands of the `cellfeed` program, one file each.
#pragma once

#include <string>
#include <vector>

namespace cellfeed::tools {

int InspectCommand(const std::vector<std::string>& args);
int BenchCommand(const std::vector<std::string>& args);
int CheckCommand(const std::vector<std::string>& args);
int CorpusCommand(const std::vector<std::string>& args);

}  // namespace cellfeed::tools
