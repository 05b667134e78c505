"""`python -m benchmarks SUBCOMMAND [options]`; `--help` lists the subcommands."""

import argparse
import sys
from pathlib import Path

import torch

from benchmarks.commands import COMMANDS
from benchmarks.harness.environment import resolve_device


def _device(name: str) -> torch.device:
    try:
        return resolve_device(None if name == "auto" else name)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--device",
        type=_device,
        default="auto",
        metavar="{cuda,cpu}",
        help="default: cuda when torch sees one",
    )
    common.add_argument("--quick", action="store_true", help="fewer shapes and shorter timing windows")
    common.add_argument(
        "--out",
        type=Path,
        default=Path("bench-out"),
        metavar="DIR",
        help="where JSON and plots go (default: %(default)s)",
    )
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(subparsers, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
