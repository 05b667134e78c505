"""`python -m benchmarks backward`: the attention backward alone and forward + backward, ours vs every
torch SDPA backend vs reference, with dq/dk/dv errors against float64 autograd."""

import argparse

from benchmarks.attention_modes import Mode
from benchmarks.sweep_command import Sweep, register_sweep

SWEEP = Sweep("backward", "attention backward", (Mode.BACKWARD, Mode.FORWARD_BACKWARD))


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    help_text = "attention backward and fwd+bwd: ours vs torch SDPA backends vs reference"
    register_sweep(subparsers, common, SWEEP, help_text)
