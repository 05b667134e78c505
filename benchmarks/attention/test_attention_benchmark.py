"""pytest-benchmark suite of the attention sweeps, one group per shape and mode: the forward (no mask,
causal, key padding) and the masked forward (the masks of `python -m benchmarks masked`), ours vs torch
SDPA default vs FlexAttention (compiled) vs the eager reference; the backward alone
(`torch.autograd.grad(out, (q, k, v), dout, retain_graph=True)`, the forward outside the timing) and
forward + backward, ours vs SDPA default vs the reference.

    pytest benchmarks/attention/ --benchmark-only --benchmark-json=out.json
    pytest benchmarks/ --benchmark-only --benchmark-autosave      # then, later:
    pytest benchmarks/ --benchmark-only --benchmark-compare
    pytest benchmarks/attention/ -k masked --benchmark-only

Timed by the harness's one method, as `python -m benchmarks attention` times (benchmarks/harness/timing.py:
do_bench on CUDA, the inputs rotated out of L2), its samples recorded as pytest-benchmark's rounds. Use the
CLI for the GPU tables: every SDPA backend, ceilings. FlexAttention compiles once per mask kind and shape,
in the untimed first call (seconds on the CPU). On the CPU our kernels only run in Triton's interpreter
(TRITON_INTERPRET=1), on the smallest shape, as an error check whose time is not a speed.
"""

import math

import pytest

from benchmarks.attention.accuracy import max_abs_errors
from benchmarks.attention.calls import checked_outputs, float64_expected, timed_call
from benchmarks.attention.cases import (
    ATTENTION_CASES,
    MASKED_CASES,
    AttentionCase,
    CaseSet,
    make_inputs,
    smallest_shape_cases,
)
from benchmarks.attention.modes import Mode
from benchmarks.attention.providers import FLEX, REFERENCE, SDPA_DEFAULT, attention_providers
from benchmarks.harness.environment import default_dtype, resolve_device
from benchmarks.harness.providers import OURS, Provider
from benchmarks.harness.pytest_timing import benchmark_call
from benchmarks.harness.timing import Stopwatch, rotating, rotating_input_sets

DEVICE = resolve_device(None)
ON_CUDA = DEVICE.type == "cuda"
DTYPE = default_dtype(DEVICE)
STOPWATCH = Stopwatch(DEVICE)


def _cases(case_set: CaseSet, gpu_shapes: list[tuple[int, int, int, int]], cpu_length: int) -> list[AttentionCase]:
    shapes = gpu_shapes if ON_CUDA else [(2, 4, cpu_length, 64)]
    return [AttentionCase(batch, heads, n, d, mask) for batch, heads, n, d in shapes for mask in case_set.masks]


FORWARD_CASES = _cases(ATTENTION_CASES, [(16, 16, 1024, 128), (4, 16, 4096, 128)], 128)
MASKED_FORWARD_CASES = _cases(MASKED_CASES, [(8, 16, 2048, 128), (2, 16, 8192, 128)], 128)
BACKWARD_CASES = _cases(ATTENTION_CASES, [(16, 16, 1024, 128), (4, 16, 4096, 128)], 64)
FORWARD_PROVIDERS = attention_providers(DEVICE, [OURS, SDPA_DEFAULT, FLEX, REFERENCE])
BACKWARD_PROVIDERS = attention_providers(DEVICE, [OURS, SDPA_DEFAULT, REFERENCE])


SMALLEST = smallest_shape_cases(FORWARD_CASES) + smallest_shape_cases(MASKED_FORWARD_CASES) + smallest_shape_cases(
    BACKWARD_CASES)


def measure(benchmark, case: AttentionCase, mode: Mode, provider: Provider) -> None:
    """Check `provider` on `case` in `mode` against float64 (also the warm-up and any compile), then time it."""
    reason = provider.skip_reason(case in SMALLEST)
    if reason is not None:
        pytest.skip(reason)
    case = case.in_mode(mode)
    input_sets = rotating_input_sets(
        lambda seed: make_inputs(case, DTYPE, DEVICE, seed=seed, gradients=mode.needs_gradients), DEVICE)
    benchmark.group = case.label
    with provider.context():
        for inputs in input_sets:  # per-input state (FlexAttention's block mask): not timed
            provider.prepare(inputs)
        try:
            outputs = checked_outputs(mode, provider, input_sets[0])
        except NotImplementedError as cannot:  # e.g. SDPA on soft-capping: nothing to time
            pytest.skip(f"{provider.name} cannot run {case.label}: {cannot}")
        errors = max_abs_errors(outputs, float64_expected([mode], input_sets[0])[mode])
        calls = [timed_call(mode, provider, inputs) for inputs in input_sets]
        median = benchmark_call(benchmark, STOPWATCH, rotating(lambda call: call(), calls))
    benchmark.extra_info.update(provider=provider.label, mode=mode.value, flops=case.flops)
    if median is not None:
        benchmark.extra_info["tflops_at_median"] = case.flops / median / 1e12
    benchmark.extra_info.update(max_abs_error=max(errors.values()), max_abs_errors=errors)
    assert all(math.isfinite(error) for error in errors.values()), errors


def _case_id(case: AttentionCase) -> str:
    return case.label.replace(" ", "-")


@pytest.mark.parametrize("provider", FORWARD_PROVIDERS, ids=lambda p: p.name)
@pytest.mark.parametrize("case", FORWARD_CASES, ids=_case_id)
def test_attention_forward(benchmark, case: AttentionCase, provider: Provider) -> None:
    measure(benchmark, case, Mode.FORWARD, provider)


@pytest.mark.parametrize("provider", FORWARD_PROVIDERS, ids=lambda p: p.name)
@pytest.mark.parametrize("case", MASKED_FORWARD_CASES, ids=_case_id)
def test_masked_forward(benchmark, case: AttentionCase, provider: Provider) -> None:
    measure(benchmark, case, Mode.FORWARD, provider)


@pytest.mark.parametrize("provider", BACKWARD_PROVIDERS, ids=lambda p: p.name)
@pytest.mark.parametrize("mode", [Mode.BACKWARD, Mode.FORWARD_BACKWARD], ids=lambda m: m.value)
@pytest.mark.parametrize("case", BACKWARD_CASES, ids=_case_id)
def test_attention_backward(benchmark, case: AttentionCase, mode: Mode, provider: Provider) -> None:
    measure(benchmark, case, mode, provider)
