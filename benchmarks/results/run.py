"""`python -m benchmarks report [RESULTS_DIR] [--write | --check]`: the results README from the GPU runs' JSON.

Prints it by default; `--write` writes RESULTS_DIR/README.md; `--check` exits 1 when that file is not
what the JSON gives (stale, or edited by hand).
"""

import argparse
import sys
from pathlib import Path

from benchmarks.harness.command_run import Command
from benchmarks.results.readme import RESULTS_DIR, readme_text


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="?", type=Path, default=RESULTS_DIR, metavar="RESULTS_DIR",
                        help="the folder of committed runs (default: benchmarks/results)")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="write RESULTS_DIR/README.md")
    action.add_argument("--check", action="store_true", help="exit 1 when RESULTS_DIR/README.md is stale")


def run(args: argparse.Namespace) -> int:
    if not args.results.is_dir():
        raise SystemExit(f"report: RESULTS_DIR {args.results} is not a folder")
    text = readme_text(args.results)
    readme = args.results / "README.md"
    if args.write:
        readme.write_text(text)
        print(f"wrote {readme}")
        return 0
    if args.check:
        if readme.is_file() and readme.read_text() == text:
            print(f"{readme} is up to date")
            return 0
        state = "is missing" if not readme.is_file() else "is stale (or was edited by hand)"
        print(f"{readme} {state}: run `python -m benchmarks report --write`", file=sys.stderr)
        return 1
    print(text, end="")
    return 0


# The report measures nothing: --device, --quick and --out do not apply.
COMMAND = Command("report", "benchmarks/results/README.md: the latest GPU runs vs the goals", run, add_options,
                  measures=False)
