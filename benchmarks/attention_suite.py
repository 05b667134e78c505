"""The attention forward sweep: every case x every provider, one `AttentionRow` each.

A provider that cannot run a case (an SDPA backend that rejects the input, our Triton kernels without
CUDA, out of memory) gives a row with the reason instead of numbers: nothing is dropped silently.
"""

import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

import torch

from benchmarks.accuracy import float64_reference, max_abs_error
from benchmarks.attention_inputs import (
    AttentionCase,
    AttentionInputs,
    MaskKind,
    make_inputs,
    smallest_shape_cases,
)
from benchmarks.attention_providers import SDPA_DEFAULT, Provider
from benchmarks.ceilings import Ceilings
from benchmarks.flops import tflops_per_second
from benchmarks.memory import peak_memory_bytes
from benchmarks.timing import Stopwatch, Timing, input_sets_needed, rotating

MEASURED = (
    "attention forward, softmax(Q K^T / sqrt(D) + mask) V: time per call; "
    "FLOPs = 4*B*H*N*N*D, halved when causal; error = max |out - float64 reference| on the same inputs"
)
_GPU_TOKENS = 16 * 1024  # B * N per case: enough work to fill the card at every length
_GPU_MODEL_WIDTH = 2048  # H * D


@dataclass(frozen=True)
class AttentionRow:
    case: AttentionCase
    provider: str
    label: str
    reason: str | None = None  # why the provider is unavailable for this case; None when it ran
    timing: Timing | None = None
    tflops: float | None = None
    ceiling_fraction: float | None = None
    speedup_vs_sdpa_default: float | None = None
    max_abs_error: float | None = None
    peak_memory_bytes: int | None = None

    @property
    def available(self) -> bool:
        return self.reason is None

    def as_record(self) -> dict:
        timing = self.timing
        return {
            "batch": self.case.batch,
            "heads": self.case.heads,
            "seq_len": self.case.seq_len,
            "head_dim": self.case.head_dim,
            "mask": self.case.mask.value,
            "causal": self.case.causal,
            "flops": self.case.flops,
            "provider": self.provider,
            "label": self.label,
            "available": self.available,
            "reason": self.reason,
            "median_ms": timing.median_ms if timing else None,
            "p20_ms": timing.p20_ms if timing else None,
            "p80_ms": timing.p80_ms if timing else None,
            "tflops": self.tflops,
            "ceiling_fraction": self.ceiling_fraction,
            "speedup_vs_sdpa_default": self.speedup_vs_sdpa_default,
            "max_abs_error": self.max_abs_error,
            "peak_memory_bytes": self.peak_memory_bytes,
        }


def attention_cases(device: torch.device, quick: bool) -> list[AttentionCase]:
    """GPU: B*N = 16k tokens, H*D = 2048. CPU: a small honest set (fp32 math on a few cores)."""
    if device.type == "cuda":
        lengths = (512, 1024, 2048, 4096, 8192) + (() if quick else (16384,))
        return [
            AttentionCase(_GPU_TOKENS // n, _GPU_MODEL_WIDTH // d, n, d, mask)
            for d in (64, 128)
            for mask in MaskKind
            for n in lengths
        ]
    lengths = (128, 256) if quick else (128, 256, 512)
    return [AttentionCase(2, 4, n, 64, mask) for mask in MaskKind for n in lengths]


def measure_cases(
    cases: list[AttentionCase],
    providers: list[Provider],
    dtype: torch.dtype,
    stopwatch: Stopwatch,
    ceilings: Ceilings,
    on_step: Callable[[str], None] = lambda description: None,
) -> Iterator[list[AttentionRow]]:
    """Measure every provider on each case in turn, yielding that case's rows.

    One case at a time, so that a run stopped early (a time limit) still has every finished case.
    `on_step` is called before each (case, provider).
    """
    smallest = smallest_shape_cases(cases)
    for case in cases:
        input_sets = _input_sets(case, dtype, stopwatch.device)
        expected = float64_reference(input_sets[0])
        case_rows = []
        for provider in providers:
            on_step(f"{case.label}: {provider.name}")
            is_smallest = case in smallest
            case_rows.append(_measure(provider, case, input_sets, expected, stopwatch, ceilings, is_smallest))
        yield _with_speedups(case_rows)


def _input_sets(case: AttentionCase, dtype: torch.dtype, device: torch.device) -> list[AttentionInputs]:
    """Enough independent random input sets to rotate through without timing the cache."""
    first = make_inputs(case, dtype, device, seed=0)
    count = input_sets_needed(first.nbytes, device)
    return [first] + [make_inputs(case, dtype, device, seed=i) for i in range(1, count)]


def _measure(
    provider: Provider,
    case: AttentionCase,
    input_sets: list[AttentionInputs],
    expected: torch.Tensor,
    stopwatch: Stopwatch,
    ceilings: Ceilings,
    is_smallest: bool,
) -> AttentionRow:
    row = AttentionRow(case, provider.name, provider.label)
    reason = provider.skip_reason(is_smallest)
    if reason is not None:
        return replace(row, reason=reason)

    with provider.context():
        error, reason = _first_call_error(provider, input_sets[0], expected)
        if reason is not None:
            return replace(row, reason=reason)
        try:
            timing = stopwatch.measure(rotating(provider.call, input_sets))
            peak = peak_memory_bytes(lambda: provider.call(input_sets[0]), stopwatch.device)
        except torch.OutOfMemoryError as failure:  # the first call fitted, repeated ones did not
            _release_cached_memory(stopwatch.device)
            return replace(row, reason=f"out of memory while timing: {_first_line(str(failure))}")
    tflops = tflops_per_second(case.flops, timing.median_ms)
    return replace(
        row,
        timing=timing,
        tflops=tflops,
        ceiling_fraction=tflops / ceilings.matmul_tflops,
        max_abs_error=error,
        peak_memory_bytes=peak,
    )


def _first_call_error(
    provider: Provider, inputs: AttentionInputs, expected: torch.Tensor
) -> tuple[float | None, str | None]:
    """(max abs error, None) when the provider runs on these inputs, else (None, why it does not).

    Any exception counts as "cannot run this input": SDPA backends reject inputs with RuntimeError, and
    the warnings they emit on the way say why, so those are kept in the reason too.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            output = provider.call_checked(inputs)
        except Exception as failure:  # reported in the row: see the docstring
            _release_cached_memory(inputs.q.device)
            return None, _failure_reason(failure, caught)
    return max_abs_error(output, expected), None


def _release_cached_memory(device: torch.device) -> None:
    """After a failure (often out of memory), give the next provider an unfragmented pool."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _failure_reason(failure: Exception, caught: list[warnings.WarningMessage]) -> str:
    lines = [f"{type(failure).__name__}: {_first_line(str(failure))}"]
    for warning in caught:
        line = _first_line(str(warning.message))
        if line and line not in lines:
            lines.append(line)
    return "; ".join(lines)


def _first_line(text: str) -> str:
    """Torch messages carry C++ source locations after the first line (and after "(Triggered")."""
    return text.strip().split("\n", 1)[0].split(" (Triggered internally", 1)[0]


def _with_speedups(rows: list[AttentionRow]) -> list[AttentionRow]:
    baseline = next((r.timing for r in rows if r.provider == SDPA_DEFAULT and r.timing), None)
    if baseline is None:
        return rows
    return [
        replace(r, speedup_vs_sdpa_default=baseline.median_ms / r.timing.median_ms) if r.timing else r
        for r in rows
    ]


def by_head_dim_and_mask(rows: Iterable[AttentionRow]) -> dict[tuple[int, MaskKind], list[AttentionRow]]:
    """Rows grouped the way tables and plots show them, each group in sweep order."""
    groups: dict[tuple[int, MaskKind], list[AttentionRow]] = defaultdict(list)
    for row in rows:
        groups[row.case.head_dim, row.case.mask].append(row)
    return dict(groups)
