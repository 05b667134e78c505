"""pytest-benchmark suite: ours vs torch SDPA default vs the eager reference, one group per shape.

    pytest benchmarks/ --benchmark-only --benchmark-json=out.json
    pytest benchmarks/ --benchmark-only --benchmark-autosave      # then, later:
    pytest benchmarks/ --benchmark-only --benchmark-compare

pytest-benchmark times with the host clock (each call waits for the GPU). Use
`python -m benchmarks attention` for the GPU tables: CUDA events, every SDPA backend, ceilings.
On the CPU our kernels only run in Triton's interpreter (TRITON_INTERPRET=1), on the smallest shape,
as an error check whose time is not a speed.
"""

import math
from collections.abc import Callable

import pytest
import torch

from benchmarks.accuracy import float64_reference, max_abs_error
from benchmarks.attention_inputs import (
    AttentionCase,
    AttentionInputs,
    MaskKind,
    make_inputs,
    smallest_shape_cases,
)
from benchmarks.attention_providers import OURS, REFERENCE, SDPA_DEFAULT, Provider, attention_providers
from benchmarks.environment import resolve_device

DEVICE = resolve_device(None)
ON_CUDA = DEVICE.type == "cuda"
DTYPE = torch.bfloat16 if ON_CUDA else torch.float32
CASES = [
    AttentionCase(batch, heads, n, d, mask)
    for batch, heads, n, d in ([(16, 16, 1024, 128), (4, 16, 4096, 128)] if ON_CUDA else [(2, 4, 128, 64)])
    for mask in MaskKind
]
SMALLEST = smallest_shape_cases(CASES)
PROVIDERS = attention_providers(DEVICE, [OURS, SDPA_DEFAULT, REFERENCE])


def _waiting(call: Callable[[AttentionInputs], torch.Tensor]) -> Callable[[AttentionInputs], torch.Tensor]:
    """The call, returning only once the device has finished it (the host clock times it)."""
    if not ON_CUDA:
        return call

    def call_and_wait(inputs: AttentionInputs) -> torch.Tensor:
        output = call(inputs)
        torch.cuda.synchronize(DEVICE)
        return output

    return call_and_wait


@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.name)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label.replace(" ", "-"))
def test_attention_forward(benchmark, case: AttentionCase, provider: Provider) -> None:
    reason = provider.skip_reason(case in SMALLEST)
    if reason is not None:
        pytest.skip(reason)
    inputs = make_inputs(case, DTYPE, DEVICE, seed=0)
    benchmark.group = case.label
    with provider.context():
        error = max_abs_error(provider.call_checked(inputs), float64_reference(inputs))  # also the warm-up
        timed = _waiting(provider.call)
        if provider.smallest_case_only:  # the interpreter: about a second per call
            benchmark.pedantic(timed, args=(inputs,), rounds=1, iterations=1)
        else:
            benchmark(timed, inputs)
    benchmark.extra_info.update(
        provider=provider.label,
        flops=case.flops,
        tflops_at_median=case.flops / benchmark.stats.stats.median / 1e12,
        max_abs_error=error,
    )
    assert math.isfinite(error)
