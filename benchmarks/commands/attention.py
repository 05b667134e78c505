"""`python -m benchmarks attention`: the attention forward, ours vs every torch SDPA backend vs reference."""

import argparse

from benchmarks.attention_modes import Mode
from benchmarks.sweep_command import Sweep, register_sweep

SWEEP = Sweep("attention", "attention forward", (Mode.FORWARD,))


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    help_text = "attention forward: ours vs torch SDPA backends vs reference"
    register_sweep(subparsers, common, SWEEP, help_text)
