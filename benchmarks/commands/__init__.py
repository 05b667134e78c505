"""The subcommands of `python -m benchmarks`, one module each.

A module provides `register(subparsers, common)`: it adds its parser (with `common`, the shared
--device/--quick/--out options, as a parent) and sets `run(args) -> exit code` as the parser default.
"""

from benchmarks.commands import all as run_all  # the module `all`; keeps the builtin's name free here
from benchmarks.commands import (
    attention, backward, ceilings, decode, masked, parity, pipelines, positional, report, transformer,
)
from benchmarks.compile import run as compile_report

COMMANDS = (
    attention, backward, masked, ceilings, decode, parity, positional, transformer, pipelines, run_all, report,
    compile_report,
)
