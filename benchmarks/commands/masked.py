"""`python -m benchmarks masked`: the attention forward with the masks users pass (key padding at ~25% and
~50%, a bool sliding window, an additive ALiBi-like bias, causal + key padding in one bool mask), ours vs
every torch SDPA backend vs FlexAttention vs reference. The goal: ours >= 3x SDPA's default."""

import argparse

from benchmarks.attention_modes import Mode
from benchmarks.attention_suite import MASKED_CASES
from benchmarks.sweep_command import Sweep, register_sweep

NOTE = (
    "masked rows count the dense FLOPs (every query-key pair, only is_causal halves them), whatever the mask "
    "excludes: a kernel that skips masked tiles shows a rate above the work it did, so compare providers by "
    "time and the speed-up over SDPA's default"
)
SWEEP = Sweep("masked", "masked attention forward", (Mode.FORWARD,), MASKED_CASES, NOTE)


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    help_text = "attention forward with padding, window, bias and causal+padding masks: ours vs SDPA vs flex"
    register_sweep(subparsers, common, SWEEP, help_text)
