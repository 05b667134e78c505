"""Warp specialisation of the forward's key loop (`tl.range(..., warp_specialize=True)`), on request.

Triton 3.6 splits a warp-specialised loop into producer warps that issue the TMA loads and consumer
warps that run the dots and the softmax, each group with its own register budget (`setmaxnreg`). It
does so on sm_100 for our descriptor path, where every 16-bit variant compiles spill-free with it; on
sm_90 it leaves a maskless loop unpartitioned and fails to compile masked 64-row tiles
(NVGPUWarpSpecialization), and float32 fails on sm_100 with masks and spills with dropout
(`python -m benchmarks compile --warp-specialize`, docs/benchmarks/compile.md). So it applies to
16-bit inputs on the descriptor path of sm_100 and later only, and, untimed on any card so far, only
when asked for: `force_warp_specialization(True)` turns it on for such forward launches in the block,
so that a GPU session can time both.
"""
import contextlib
import contextvars

import torch

from kernels.sdpa.triton.descriptors import device_capability
from kernels.shared.switches import switched

WARP_SPECIALIZATION_CAPABILITY = 100  # Blackwell: the first compute capability Triton 3.6 partitions for
_DTYPES = (torch.float16, torch.bfloat16)

_wanted: contextvars.ContextVar[bool] = contextvars.ContextVar("warp_specialization", default=False)


def uses_warp_specialization(use_tma: bool, query: torch.Tensor) -> bool:
    """WARP_SPECIALIZE of a forward launch: inside a `force_warp_specialization(True)` block, on the
    descriptor path (its producer warps issue TMA loads), for 16-bit queries, on a CUDA device of
    compute capability 10.0 or more (a CPU tensor, as the compile report and the interpreter tests
    pass, is taken at its word)."""
    if not (use_tma and _wanted.get() and query.dtype in _DTYPES):
        return False
    return query.device.type != "cuda" or device_capability(query.device) >= WARP_SPECIALIZATION_CAPABILITY


def warp_specialization_switch() -> bool:
    """What the innermost `force_warp_specialization` block says, False outside any (a launch plan's key)."""
    return _wanted.get()


def force_warp_specialization(enabled: bool) -> contextlib.AbstractContextManager:
    """Inside the block, the forward launches uses_warp_specialization admits warp-specialise their key
    loop (enabled) or none does (the default)."""
    return switched(_wanted, enabled)
