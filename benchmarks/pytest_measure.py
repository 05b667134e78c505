"""One pytest-benchmark measurement, shared by the `test_*_benchmark.py` suites: a provider on a case in a
mode (forward, backward, fwd+bwd), checked against float64 first, grouped per shape and mode.

pytest-benchmark times with the host clock, so on CUDA each call waits for the device.
"""

import math
from collections.abc import Callable

import pytest
import torch

from benchmarks.accuracy import max_abs_errors
from benchmarks.attention_inputs import AttentionCase, make_inputs
from benchmarks.attention_modes import Mode, checked_outputs, float64_expected, timed_call
from benchmarks.attention_providers import Provider
from benchmarks.environment import resolve_device

DEVICE = resolve_device(None)
ON_CUDA = DEVICE.type == "cuda"
DTYPE = torch.bfloat16 if ON_CUDA else torch.float32


def measure(benchmark, case: AttentionCase, mode: Mode, provider: Provider, is_smallest: bool) -> None:
    reason = provider.skip_reason(is_smallest)
    if reason is not None:
        pytest.skip(reason)
    inputs = make_inputs(case, DTYPE, DEVICE, seed=0, gradients=mode.needs_gradients)
    benchmark.group = mode.case_label(case)
    with provider.context():
        provider.prepare(inputs)  # per-input state (FlexAttention's block mask): not timed
        outputs = checked_outputs(mode, provider, inputs)  # also the warm-up (and the compile)
        errors = max_abs_errors(outputs, float64_expected([mode], inputs)[mode])
        median = time_call(benchmark, provider, timed_call(mode, provider, inputs))
    flops = mode.flops(case)
    benchmark.extra_info.update(provider=provider.label, mode=mode.value, flops=flops)
    if median is not None:
        benchmark.extra_info["tflops_at_median"] = flops / median / 1e12
    benchmark.extra_info.update(max_abs_error=max(errors.values()), max_abs_errors=errors)
    assert all(math.isfinite(error) for error in errors.values()), errors


def time_call(benchmark, provider: Provider, call: Callable[[], object]) -> float | None:
    """Time `call`, each call waiting for the device: once in the interpreter (seconds per call, an
    error check), else as pytest-benchmark calibrates. The median in seconds; None under
    --benchmark-disable, where the call runs once untimed."""
    timed = _waiting(call)
    if provider.smallest_case_only:
        benchmark.pedantic(timed, rounds=1, iterations=1)
    else:
        benchmark(timed)
    return None if benchmark.stats is None else benchmark.stats.stats.median


def _waiting(call: Callable[[], object]) -> Callable[[], object]:
    """The call, returning only once the device has finished it (the host clock times it)."""
    if not ON_CUDA:
        return call

    def call_and_wait() -> object:
        output = call()
        torch.cuda.synchronize(DEVICE)
        return output

    return call_and_wait
