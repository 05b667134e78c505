"""The attention sweep: every case x every mode x every provider, one `Row` each.

A mode is the forward, the backward alone, or forward + backward (`attention/modes.py`). A provider that
cannot run a case (an SDPA backend that rejects the input, our Triton kernels without CUDA, out of
memory) gives a row with the reason instead of numbers: nothing is dropped silently.
"""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

import torch

from benchmarks.attention.accuracy import max_abs_errors
from benchmarks.attention.calls import checked_outputs, float64_expected, timed_call
from benchmarks.attention.cases import (
    SCORE_VARIANT_KINDS,
    AttentionCase,
    AttentionInputs,
    MaskKind,
    make_inputs,
    smallest_shape_cases,
)
from benchmarks.attention.modes import Mode
from benchmarks.attention.providers import FLEX, SDPA_DEFAULT, VARLEN
from benchmarks.harness.ceilings import Ceilings
from benchmarks.harness.measure import Measurement, measure_row
from benchmarks.harness.providers import OURS, Provider
from benchmarks.harness.rates import tflops_per_second
from benchmarks.harness.rows import Row, with_speedup_over
from benchmarks.harness.timing import Stopwatch, rotating_input_sets

# The provider whose row is another's twin where it is not the provider itself: varlen_attention runs
# only the packed documents, and is compared with our dense kernel.
_TWIN_PROVIDERS = {VARLEN: OURS}


def measure_cases(
    cases: list[AttentionCase],
    providers: list[Provider],
    dtype: torch.dtype,
    stopwatch: Stopwatch,
    ceilings: Ceilings,
    on_step: Callable[[str], None] = lambda description: None,
    modes: Sequence[Mode] = (Mode.FORWARD,),
) -> Iterator[list[Row]]:
    """Measure every provider on each case in each mode in turn, yielding the rows of one (case, mode).

    One case at a time, so that a run stopped early (a time limit) still has every finished case; the
    modes of a case share its inputs and float64 references. `on_step` is called before each
    (case, mode, provider).
    """
    smallest = smallest_shape_cases(cases)
    gradients = any(mode.needs_gradients for mode in modes)
    for case in cases:
        input_sets = rotating_input_sets(
            lambda seed: make_inputs(case, dtype, stopwatch.device, seed=seed, gradients=gradients), stopwatch.device)
        expected = float64_expected(modes, input_sets[0])
        for mode in modes:
            case_in_mode = case.in_mode(mode)
            rows = []
            for provider in (p for p in providers if has_row(p, case)):
                on_step(f"{case_in_mode.label}: {provider.name}")
                rows.append(_measure(provider, case_in_mode, input_sets, expected[mode], stopwatch, ceilings,
                                     case in smallest))
            yield with_speedup_over(with_speedup_over(rows, SDPA_DEFAULT, "speedup_vs_sdpa_default"), FLEX,
                                    "speedup_vs_flex")


def has_row(provider: Provider, case: AttentionCase) -> bool:
    """Whether the provider is measured on the case: varlen_attention on the packed documents only."""
    return provider.name != VARLEN or case.mask is MaskKind.DOCUMENTS


def with_twin_comparisons(rows: list[Row]) -> list[Row]:
    """Each timed row compared with its twin, the same provider's row on another mask kind of the same
    shape and mode (our dense kernel's for varlen_attention's):
    - score-variant and `documents` rows: `rate_vs_causal`, their TFLOP/s over the plain causal twin's,
      the share of the plain kernel's speed they keep (a window's and documents' FLOPs count only the
      pairs they attend, so their rate is per attended score);
    - `documents` rows: `speedup_vs_padded`, the `documents-padded` twin's median time over theirs, the
      same documents packed against padded one a row (in forward + backward, the training step)."""
    rows = _with_twin_ratio(rows, "rate_vs_causal", MaskKind.CAUSAL, (*SCORE_VARIANT_KINDS, MaskKind.DOCUMENTS),
                            lambda row, twin: row["tflops"] / twin["tflops"])
    return _with_twin_ratio(rows, "speedup_vs_padded", MaskKind.PADDED_DOCUMENTS, (MaskKind.DOCUMENTS,),
                            lambda row, twin: twin.timing.median_ms / row.timing.median_ms)


def _with_twin_ratio(rows: list[Row], name: str, twin_mask: MaskKind, masks: Sequence[MaskKind],
                     ratio: Callable[[Row, Row], float]) -> list[Row]:
    """Each timed row of `masks` with `name` = ratio(row, its twin on `twin_mask`), where the twin was timed."""
    def twin_key(row: Row) -> tuple:
        return replace(row.case, mask=twin_mask), _TWIN_PROVIDERS.get(row.provider, row.provider)

    twins = {twin_key(row): row for row in rows if row.case.mask is twin_mask and row.timing}
    compared = []
    for row in rows:
        twin = twins.get(twin_key(row))
        if row.case.mask in masks and row.timing and twin is not None:
            row = row.with_values(**{name: ratio(row, twin)})
        compared.append(row)
    return compared


def _measure(
    provider: Provider,
    case: AttentionCase,
    input_sets: list[AttentionInputs],
    expected: dict[str, torch.Tensor],
    stopwatch: Stopwatch,
    ceilings: Ceilings,
    is_smallest: bool,
) -> Row:
    def first_call() -> dict[str, torch.Tensor]:
        for inputs in input_sets:  # per-input state (FlexAttention's block mask), kept out of the timing
            provider.prepare(inputs)
        return checked_outputs(case.mode, provider, input_sets[0])

    def timed_calls() -> list[Callable[[], object]]:
        # Backward: each input set's forward runs here, its graph kept until the calls are dropped.
        return [timed_call(case.mode, provider, inputs) for inputs in input_sets]

    def values(measured: Measurement) -> dict:
        errors = max_abs_errors(measured.outputs, expected)
        checked = {"max_abs_error": max(errors.values()), "max_abs_errors": errors}
        if measured.timing is None:  # a correctness check only
            return checked
        tflops = tflops_per_second(case.flops, measured.timing.median_ms)
        return {"tflops": tflops, "ceiling_fraction": tflops / ceilings.matmul_tflops, **checked,
                "peak_memory_bytes": measured.peak_memory_bytes}

    return measure_row(case, provider, is_smallest, stopwatch, first_call, timed_calls, values)

