"""pytest-benchmark suite of decode attention (few queries over a KV cache, the cases of
`python -m benchmarks decode --quick`): ours with the key splits `kernels.attention` picks (split-K) vs
ours forced onto the normal kernel (no split) vs torch SDPA default vs the eager reference, one group
per case.

    pytest benchmarks/test_decode_benchmark.py --benchmark-only

pytest-benchmark times with the host clock (each call waits for the GPU); as in the CLI, the calls
rotate through enough input sets that the KV cache is not L2-resident. Use `python -m benchmarks decode`
for the GPU tables: CUDA events, every SDPA backend, GB/s against the measured copy ceiling.
On the CPU our kernels only run in Triton's interpreter (TRITON_INTERPRET=1), on the smallest case,
as an error check whose time is not a speed; `kernels.attention` never splits off CUDA, so there
"ours" is forced to `decode_suite.INTERPRETER_SPLITS` splits to check the split-K kernels.
"""
import math

import pytest

from benchmarks.attention_providers import OURS, REFERENCE, SDPA_DEFAULT, Provider
from benchmarks.decode_inputs import DecodeCase, decode_cases, float64_expected, decode_input_sets, smallest_cases
from benchmarks.decode_suite import NO_SPLIT, decode_providers
from benchmarks.pytest_measure import DEVICE, DTYPE, time_call
from benchmarks.timing import rotating
from kernels.sdpa.triton.decode import plan_num_splits

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
        median = time_call(benchmark, provider, rotating(provider.call, input_sets))
        # ours: the key splits it ran with (1 = the normal kernel); None for the others, as in the CLI's JSON
        splits = plan_num_splits(first.q, first.k, is_causal=False, dropout=None) if provider.kernels_backend else None
    error = (output.double() - float64_expected(first)).abs().max().item()
    bytes_moved = case.bytes_moved(DTYPE)
    benchmark.extra_info.update(provider=provider.label, num_splits=splits, bytes_moved=bytes_moved,
                                max_abs_error=error)
    if median is not None:
        benchmark.extra_info["gbps_at_median"] = bytes_moved / median / 1e9
    assert math.isfinite(error)
