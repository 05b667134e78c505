"""pytest-benchmark suite: the fused sinusoidal encoding and embedding vs the course's table add vs torch
eager, one group per case.

    pytest benchmarks/positional/ --benchmark-only --benchmark-json=out.json

Timed by the harness's one method, as `python -m benchmarks positional` times (benchmarks/harness/timing.py:
do_bench on CUDA, the inputs rotated out of L2), its samples recorded as pytest-benchmark's rounds. Use the
CLI for the GPU tables: GB/s against the measured copy ceiling. On the CPU our kernels only run in
Triton's interpreter (TRITON_INTERPRET=1), on the smallest case of each op, as an error check whose time
is not a speed.
"""
import math

import pytest

from benchmarks.harness.environment import default_dtype, resolve_device
from benchmarks.harness.providers import OURS
from benchmarks.harness.pytest_timing import benchmark_call
from benchmarks.harness.timing import Stopwatch, rotating, rotating_input_sets
from benchmarks.positional.cases import Op, PositionalCase, float64_expected, make_inputs, smallest_cases
from benchmarks.positional.providers import EAGER, TABLE_ADD, positional_providers

DEVICE = resolve_device(None)
ON_CUDA = DEVICE.type == "cuda"
DTYPE = default_dtype(DEVICE)
STOPWATCH = Stopwatch(DEVICE)
CASES = (
    [PositionalCase(Op.ENCODE, 16, 2048, 1024), PositionalCase(Op.ENCODE, 64, 1, 4096),
     PositionalCase(Op.EMBED, 16, 2048, 1024, vocab_size=32000)]
    if ON_CUDA else
    [PositionalCase(Op.ENCODE, 2, 128, 64), PositionalCase(Op.EMBED, 2, 128, 64, vocab_size=1000)]
)
SMALLEST = smallest_cases(CASES)
PROVIDER_NAMES = {Op.ENCODE: (OURS, TABLE_ADD, EAGER), Op.EMBED: (OURS, EAGER)}


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
    input_sets = rotating_input_sets(lambda seed: make_inputs(case, DTYPE, DEVICE, seed), DEVICE)
    benchmark.group = f"{case.op.value} {case.label}"
    output = provider.call_checked(input_sets[0])  # proves our Triton kernel ran; also the warm-up
    error = (output.double() - float64_expected(case, input_sets[0])).abs().max().item()
    median = benchmark_call(benchmark, STOPWATCH, rotating(provider.call, input_sets))
    bytes_moved = case.bytes_moved(DTYPE)
    benchmark.extra_info.update(provider=provider.label, bytes_moved=bytes_moved, max_abs_error=error)
    if median is not None:
        benchmark.extra_info["gbps_at_median"] = bytes_moved / median / 1e9
    assert math.isfinite(error)
