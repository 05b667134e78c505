"""pytest-benchmark suite of decode attention (few queries over a KV cache, the cases of
`python -m benchmarks decode --quick`): ours with the key splits `kernels.attention` picks (split-K) vs
ours forced onto the normal kernel (no split) vs torch SDPA default vs the eager reference, one group
per case.

    pytest benchmarks/decode/ --benchmark-only

Timed by the harness's one method, as `python -m benchmarks decode` times (benchmarks/harness/timing.py:
do_bench on CUDA, the calls rotating through enough input sets that the KV cache is not L2-resident), its
samples recorded as pytest-benchmark's rounds. Use the CLI for the GPU tables: every SDPA backend, GB/s
against the measured copy ceiling. On the CPU our kernels only run in Triton's interpreter
(TRITON_INTERPRET=1), on the smallest case, as an error check whose time is not a speed;
`kernels.attention` never splits off CUDA, so there "ours" is forced to
`decode.providers.INTERPRETER_SPLITS` splits to check the split-K kernels.
"""
import math

import pytest

from benchmarks.attention.providers import REFERENCE, SDPA_DEFAULT
from benchmarks.decode.cases import DecodeCase, decode_cases, decode_input_sets, float64_expected, smallest_cases
from benchmarks.decode.providers import NO_SPLIT, decode_providers
from benchmarks.harness.environment import default_dtype, resolve_device
from benchmarks.harness.providers import OURS, Provider
from benchmarks.harness.pytest_timing import benchmark_call
from benchmarks.harness.timing import Stopwatch, rotating
from kernels.sdpa.triton.decode import plan_num_splits

DEVICE = resolve_device(None)
DTYPE = default_dtype(DEVICE)
STOPWATCH = Stopwatch(DEVICE)
CASES = decode_cases(DEVICE, quick=True)
SMALLEST = smallest_cases(CASES)
_BY_NAME = {p.name: p for p in decode_providers(DEVICE)}
PROVIDERS = [_BY_NAME[name] for name in (OURS, NO_SPLIT, SDPA_DEFAULT, REFERENCE)]


@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.name)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label.replace(" ", "-"))
def test_decode_forward(benchmark, case: DecodeCase, provider: Provider) -> None:
    reason = provider.skip_reason(case in SMALLEST)
    if reason is not None:
        pytest.skip(reason)
    input_sets = decode_input_sets(case, DTYPE, DEVICE)
    first = input_sets[0]
    benchmark.group = case.label
    with provider.context():
        output = provider.call_checked(first)  # proves our Triton kernel ran; also the warm-up
        median = benchmark_call(benchmark, STOPWATCH, rotating(provider.call, input_sets))
        # ours: the key splits it ran with (1 = the normal kernel); None for the others, as in the CLI's JSON
        splits = plan_num_splits(first.q, first.k, is_causal=False, dropout=None) if provider.kernels_backend else None
    error = (output.double() - float64_expected(first)).abs().max().item()
    bytes_moved = case.bytes_moved(DTYPE)
    benchmark.extra_info.update(provider=provider.label, num_splits=splits, bytes_moved=bytes_moved,
                                max_abs_error=error)
    if median is not None:
        benchmark.extra_info["gbps_at_median"] = bytes_moved / median / 1e9
    assert math.isfinite(error)
