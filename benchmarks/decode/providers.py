"""The decode implementations compared side by side: the attention benchmark's own providers (SDPA
default and each SDPA backend, the eager reference; every call passes `enable_gqa` when the heads
differ), ours with the key splits `kernels.attention` picks (split-K), and ours forced onto the normal
kernel (no split) to show what split-K gains."""

import contextlib
from dataclasses import replace

import torch

from benchmarks.attention.providers import FLEX, attention_providers
from benchmarks.harness.providers import OURS, Provider
from kernels.sdpa.triton.decode import force_num_splits

NO_SPLIT = "ours-no-split"
# Off CUDA `kernels.attention` never splits; the interpreter check forces this many splits instead.
INTERPRETER_SPLITS = 4


def decode_providers(device: torch.device) -> list[Provider]:
    """Ours with the splits `kernels.attention` picks (on CUDA; in the interpreter forced to
    INTERPRETER_SPLITS, so that the split-K kernels are what gets checked), ours on the normal kernel,
    SDPA default and each SDPA backend, the eager reference."""
    providers = []
    for provider in attention_providers(device):
        if provider.name == OURS:
            splits = contextlib.nullcontext if device.type == "cuda" else lambda: force_num_splits(INTERPRETER_SPLITS)
            providers.append(replace(provider, label=f"{provider.label}, split-K", context=splits))
            providers.append(replace(provider, name=NO_SPLIT, label=f"{provider.label}, no split",
                                     context=lambda: force_num_splits(1)))
        elif provider.name != FLEX:
            providers.append(provider)
    return providers
