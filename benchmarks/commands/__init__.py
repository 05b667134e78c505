"""The subcommands of `python -m benchmarks`, one module each.

A module provides `register(subparsers, common)`: it adds its parser (with `common`, the shared
--device/--quick/--out options, as a parent) and sets `run(args) -> exit code` as the parser default.
"""

from benchmarks.commands import attention, backward, ceilings, parity, positional

COMMANDS = (attention, backward, ceilings, parity, positional)
