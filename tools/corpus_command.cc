// `cellfeed corpus SPEC.toml ...`: the corpus lives in the Python package (TOML, pandas,
// the plot), so this command hands its arguments to `python3 -m cellfeed corpus`. It takes
// the python3 beside this program first (a venv's bin/), then the one on PATH
// ($CELLFEED_PYTHON before both). Its options are argparse's: CLI11 passes everything
// after `corpus` through untouched, --help included (argparse prints the options).
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"

namespace cellfeed::tools {

namespace {

int RunCorpus(const std::vector<std::string>& args) {
  std::string python = "python3";
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const auto beside = self.parent_path() / "python3";
    if (std::filesystem::exists(beside, ec)) python = beside.string();
  }
  if (const char* env = std::getenv("CELLFEED_PYTHON"); env != nullptr && *env != '\0') python = env;
  std::vector<std::string> argv_s = {python, "-m", "cellfeed", "corpus"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  execvp(argv[0], argv.data());
  std::fprintf(stderr, "cellfeed corpus: cannot run %s (%s); the corpus command needs the cellfeed "
               "Python package (pip install .)\n", python.c_str(), std::strerror(errno));
  return 2;
}

}  // namespace

Command AddCorpusCommand(CLI::App& root) {
  CLI::App* app = root.add_subcommand(
      "corpus", "validate a corpus declaration (SPEC.toml) and print its report");
  app->prefix_command();  // every argument after `corpus` goes to python -m cellfeed corpus
  app->set_help_flag();   // --help too: argparse answers it
  return {app, [app] { return RunCorpus(app->remaining()); }};
}

}  // namespace cellfeed::tools
