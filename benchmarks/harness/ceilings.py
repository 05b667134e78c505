"""The card's measured ceilings: a large matmul (TFLOP/s) and a large device-to-device copy (GB/s).

Rates of the kernels are reported as fractions of these, measured in the same run on the same card,
not of datasheet numbers, and timed by the rows' own stopwatch (same threads, warm-up and samples), so
that a row and its ceiling differ only in what they run. CUDA measures a bf16 matmul; the CPU an fp32
one at a smaller size.
"""

import functools
from dataclasses import dataclass

import torch

from benchmarks.harness.environment import dtype_name
from benchmarks.harness.rates import gigabytes_per_second, tflops_per_second
from benchmarks.harness.timing import Stopwatch, Timing


@dataclass(frozen=True)
class Ceilings:
    matmul_tflops: float
    matmul: str
    copy_gbps: float
    copy: str
    matmul_timing: Timing | None = None  # None: ceilings given, not measured (tests)
    copy_timing: Timing | None = None


@dataclass(frozen=True)
class _Sizes:
    matmul_dtype: torch.dtype
    matmul_n: int
    copy_bytes: int


def _sizes(device: torch.device) -> _Sizes:
    if device.type == "cuda":
        return _Sizes(torch.bfloat16, 8192, 1 << 30)
    return _Sizes(torch.float32, 1024, 64 << 20)


@functools.cache
def measure_ceilings(stopwatch: Stopwatch) -> Ceilings:
    """Measured once per (device, quick) in a process; the attention run reuses the numbers."""
    device = stopwatch.device
    sizes = _sizes(device)
    n = sizes.matmul_n
    a, b = (torch.randn(n, n, device=device, dtype=sizes.matmul_dtype) for _ in range(2))
    product = torch.empty_like(a)
    matmul = stopwatch.measure(lambda: torch.mm(a, b, out=product))

    source = torch.randn(sizes.copy_bytes // 4, device=device, dtype=torch.float32)
    target = torch.empty_like(source)
    copy = stopwatch.measure(lambda: target.copy_(source))
    moved_bytes = 2 * sizes.copy_bytes  # read once, written once

    return Ceilings(
        matmul_tflops=tflops_per_second(2 * n**3, matmul.median_ms),
        matmul=f"{dtype_name(sizes.matmul_dtype)} matmul {n}x{n}x{n} on {device.type}",
        copy_gbps=gigabytes_per_second(moved_bytes, copy.median_ms),
        copy=f"copy of {sizes.copy_bytes >> 20} MiB on {device.type}, bytes read + written",
        matmul_timing=matmul,
        copy_timing=copy,
    )
