// `cellfeed`: the command-line front of the engine.
#include <cstdio>
#include <string>
#include <vector>

#include "commands.h"

namespace {

void Usage() {
  std::fprintf(stderr,
               "usage: cellfeed <command> [options]\n\n"
               "commands:\n"
               "  inspect FILE... [--json] [--layer NAME]   shape, encoding, dtypes, filters,\n"
               "                                           chunking and columns of h5ad files\n"
               "  check FILE|DIR... [--layer NAME] [--values finite|counts|any]\n"
               "        [--timeout SECONDS]\n"
               "                                           validate whole files: every chunk,\n"
               "                                           checksum, index, value and column\n"
               "  bench FILE... [--batch-size N] [--block-size N|chunk] [--fetch-factor N]\n"
               "        [--label COLUMN] [--seconds S] [--warmup S] [--threads N] [--json]\n"
               "                                           loader throughput and batch entropy\n"
               "  corpus SPEC.toml [--json] [--plot FILE.png] [--columns C,...]\n"
               "                                           validate a corpus declaration and\n"
               "                                           print its report (cellfeed corpus -h)\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    Usage();
    return 2;
  }
  const std::string cmd = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (cmd == "inspect") return cellfeed::tools::InspectCommand(args);
  if (cmd == "bench") return cellfeed::tools::BenchCommand(args);
  if (cmd == "check") return cellfeed::tools::CheckCommand(args);
  if (cmd == "corpus") return cellfeed::tools::CorpusCommand(args);
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    Usage();
    return 0;
  }
  std::fprintf(stderr, "cellfeed: unknown command '%s'\n", cmd.c_str());
  Usage();
  return 2;
}
