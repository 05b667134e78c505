"""pytest-benchmark suite: the fused sinusoidal encoding and embedding vs the course's table add vs torch
eager, one group per case.

    pytest benchmarks/test_positional_benchmark.py --benchmark-only --benchmark-json=out.json

pytest-benchmark times with the host clock (each call waits for the GPU). Use `python -m benchmarks
positional` for the GPU tables: CUDA events, GB/s against the measured copy ceiling. On the CPU our
kernels only run in Triton's interpreter (TRITON_INTERPRET=1), on the smallest case of each op, as an
error check whose time is not a speed.
"""
import math

import pytest
import torch

from benchmarks.attention_providers import OURS
from benchmarks.environment import resolve_device
from benchmarks.positional_inputs import (
    Op,
    PositionalCase,
    float64_expected,
    make_inputs,
    smallest_cases,
)
from benchmarks.positional_providers import EAGER, TABLE_ADD, positional_providers

DEVICE = resolve_device(None)
ON_CUDA = DEVICE.type == "cuda"
DTYPE = torch.bfloat16 if ON_CUDA else torch.float32
CASES = (
    [PositionalCase(Op.ENCODE, 16, 2048, 1024), PositionalCase(Op.ENCODE, 64, 1, 4096),
     PositionalCase(Op.EMBED, 16, 2048, 1024, vocab_size=32000)]
    if ON_CUDA else
    [PositionalCase(Op.ENCODE, 2, 128, 64), PositionalCase(Op.EMBED, 2, 128, 64, vocab_size=1000)]
)
SMALLEST = smallest_cases(CASES)
PROVIDER_NAMES = {Op.ENCODE: (OURS, TABLE_ADD, EAGER), Op.EMBED: (OURS, EAGER)}


def _wait() -> None:
    if ON_CUDA:
        torch.cuda.synchronize(DEVICE)


@pytest.mark.parametrize(
    "case, provider_name",
    [(case, name) for case in CASES for name in PROVIDER_NAMES[case.op]],
    ids=lambda value: value if isinstance(value, str) else f"{value.op.value}-{value.label.replace(' ', '-')}",
)
def test_positional(benchmark, case: PositionalCase, provider_name: str) -> None:
    (provider,) = [p for p in positional_providers(case, DTYPE, DEVICE) if p.name == provider_name]
    reason = provider.skip_reason(case in SMALLEST)
    if reason is not None:
        pytest.skip(reason)
    inputs = make_inputs(case, DTYPE, DEVICE, seed=0)
    benchmark.group = f"{case.op.value} {case.label}"
    error = (provider.call_checked(inputs).double() - float64_expected(case, inputs)).abs().max().item()

    def timed():
        provider.call(inputs)
        _wait()

    if provider.smallest_case_only:  # the interpreter: about a second per call
        benchmark.pedantic(timed, rounds=1, iterations=1)
    else:
        benchmark(timed)
    benchmark.extra_info.update(provider=provider.label, bytes_moved=case.bytes_moved(DTYPE), max_abs_error=error)
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["gbps_at_median"] = case.bytes_moved(DTYPE) / benchmark.stats.stats.median / 1e9
    assert math.isfinite(error)
