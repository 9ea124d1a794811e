"""python -m cellfeed corpus SPEC.toml [--json] [--plot FILE.png] [--columns C,...]

The Python half of the `cellfeed` command: subcommands that live in the Python package
(the `cellfeed` program forwards `cellfeed corpus ...` here)."""

from __future__ import annotations

import argparse
import sys


def corpus_main(argv) -> int:
    p = argparse.ArgumentParser(
        prog="cellfeed corpus",
        description="Validate a corpus declaration (TOML) and print its report without training: "
                    "cells per source in the files, passing the filter, per split, requested and "
                    "delivered per epoch and per rank, labels, batch proportions, leakage.")
    p.add_argument("spec", help="the corpus declaration, a TOML file (docs/CORPUS.md)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="write a bar chart of requested vs available vs delivered")
    p.add_argument("--columns", default="", help="obs columns to report per label, comma-separated")
    p.add_argument("--split", default="train", choices=["train", "val", "test"],
                   help="the split whose epoch is reported (default: %(default)s)")
    p.add_argument("--world-size", type=int, default=1, metavar="N",
                   help="ranks to report per-rank counts for (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N",
                   help="cells per batch, for the batch proportions (default: %(default)s)")
    p.add_argument("--block-size", default="4", metavar="N|chunk",
                   help="consecutive cells per sampled block, an integer or 'chunk' (default: %(default)s)")
    p.add_argument("--fetch-factor", type=int, default=16, metavar="N",
                   help="batches per fetch (default: %(default)s)")
    p.add_argument("--epoch", type=int, default=0, metavar="N",
                   help="the epoch whose delivery is reported (default: %(default)s)")
    args = p.parse_args(argv)
    import cellfeed

    try:
        corpus = cellfeed.Corpus.from_toml(args.spec)
        block = args.block_size if args.block_size == "chunk" else int(args.block_size)
        report = corpus.report(columns=[c for c in args.columns.split(",") if c], split=args.split,
                               epoch=args.epoch, world_size=args.world_size, batch_size=args.batch_size,
                               block_size=block, fetch_factor=args.fetch_factor)
    except (ValueError, OSError) as e:
        print(f"cellfeed corpus: {args.spec}: {e}", file=sys.stderr)
        return 1
    print(report.to_json() if args.json else report.to_markdown())
    if args.plot:
        report.plot(args.plot)
        if not args.json:
            print(f"\nplot: {args.plot}")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    if argv[0] == "corpus":
        return corpus_main(argv[1:])
    print(f"python -m cellfeed: unknown command {argv[0]!r} (commands: corpus)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
