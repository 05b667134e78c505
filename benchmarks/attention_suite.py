"""The attention sweep: every case x every mode x every provider, one `AttentionRow` each.

A mode is the forward, the backward alone, or forward + backward (`attention_modes`). A provider that
cannot run a case (an SDPA backend that rejects the input, our Triton kernels without CUDA, out of
memory) gives a row with the reason instead of numbers: nothing is dropped silently.
"""

import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

import torch

from benchmarks.accuracy import max_abs_errors
from benchmarks.attention_inputs import (
    AttentionCase,
    AttentionInputs,
    MaskKind,
    make_inputs,
    smallest_shape_cases,
)
from benchmarks.attention_modes import Mode, checked_outputs, float64_expected, timed_call
from benchmarks.attention_providers import SDPA_DEFAULT, Provider
from benchmarks.ceilings import Ceilings
from benchmarks.flops import tflops_per_second
from benchmarks.memory import peak_memory_bytes
from benchmarks.timing import Stopwatch, Timing, rotating, rotating_input_sets, timing_record

_GPU_TOKENS = 16 * 1024  # B * N per case: enough work to fill the card at every length
_GPU_MODEL_WIDTH = 2048  # H * D


@dataclass(frozen=True)
class AttentionRow:
    case: AttentionCase
    provider: str
    label: str
    mode: Mode = Mode.FORWARD
    reason: str | None = None  # why the provider is unavailable for this case; None when it ran
    timing: Timing | None = None
    tflops: float | None = None
    ceiling_fraction: float | None = None
    speedup_vs_sdpa_default: float | None = None  # in the same mode
    errors: dict[str, float] | None = None  # max |x - float64 reference| per output: out, or dq, dk, dv
    peak_memory_bytes: int | None = None

    @property
    def available(self) -> bool:
        return self.reason is None

    @property
    def flops(self) -> int:
        return self.mode.flops(self.case)

    @property
    def max_abs_error(self) -> float | None:
        return max(self.errors.values()) if self.errors else None

    def as_record(self) -> dict:
        return {
            "batch": self.case.batch,
            "heads": self.case.heads,
            "seq_len": self.case.seq_len,
            "head_dim": self.case.head_dim,
            "mask": self.case.mask.value,
            "causal": self.case.causal,
            "mode": self.mode.value,
            "flops": self.flops,
            "provider": self.provider,
            "label": self.label,
            "available": self.available,
            "reason": self.reason,
            **timing_record(self.timing),
            "tflops": self.tflops,
            "ceiling_fraction": self.ceiling_fraction,
            "speedup_vs_sdpa_default": self.speedup_vs_sdpa_default,
            "max_abs_error": self.max_abs_error,
            "max_abs_errors": self.errors,
            "peak_memory_bytes": self.peak_memory_bytes,
        }


@dataclass(frozen=True)
class CaseSet:
    """Which cases a sweep measures: its mask kinds, and its head dims and lengths per device.

    Lengths are powers of two from `shortest` to `longest`; the gradient modes and --quick each halve
    `longest`, and the CPU's gradient cases start at 64 (Triton's interpreter runs the smallest one).
    """

    masks: tuple[MaskKind, ...]
    gpu_head_dims: tuple[int, ...] = (64, 128)
    gpu_lengths: tuple[int, int] = (512, 16384)
    cpu_lengths: tuple[int, int] = (128, 512)


ATTENTION_CASES = CaseSet((MaskKind.NONE, MaskKind.CAUSAL, MaskKind.KEY_PADDING))
# The masks users have, each a tensor the kernel reads (causal + padding included, as Hugging Face builds it).
MASKED_CASES = CaseSet(
    (
        MaskKind.KEY_PADDING,
        MaskKind.KEY_PADDING_HALF,
        MaskKind.SLIDING_WINDOW,
        MaskKind.ADDITIVE_BIAS,
        MaskKind.CAUSAL_KEY_PADDING,
    ),
    gpu_head_dims=(128,),
    gpu_lengths=(2048, 16384),
    cpu_lengths=(128, 256),
)


def attention_cases(
    device: torch.device, quick: bool, gradients: bool = False, case_set: CaseSet = ATTENTION_CASES
) -> list[AttentionCase]:
    """GPU: B*N = 16k tokens, H*D = 2048, the set's lengths. CPU: B=2, H=4, D=64 (fp32 on a few cores)."""
    if device.type == "cuda":
        shortest, longest = case_set.gpu_lengths
        longest //= (2 if gradients else 1) * (2 if quick else 1)
        return [
            AttentionCase(_GPU_TOKENS // n, _GPU_MODEL_WIDTH // d, n, d, mask)
            for d in case_set.gpu_head_dims
            for mask in case_set.masks
            for n in _powers_of_two(shortest, longest)
        ]
    shortest, longest = case_set.cpu_lengths
    longest //= (2 if gradients else 1) * (2 if quick else 1)
    lengths = _powers_of_two(min(shortest, 64) if gradients else shortest, longest)
    return [AttentionCase(2, 4, n, 64, mask) for mask in case_set.masks for n in lengths]


def _powers_of_two(shortest: int, longest: int) -> list[int]:
    return [1 << e for e in range(shortest.bit_length() - 1, longest.bit_length())]


def measure_cases(
    cases: list[AttentionCase],
    providers: list[Provider],
    dtype: torch.dtype,
    stopwatch: Stopwatch,
    ceilings: Ceilings,
    on_step: Callable[[str], None] = lambda description: None,
    modes: Sequence[Mode] = (Mode.FORWARD,),
) -> Iterator[list[AttentionRow]]:
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
            mode_rows = []
            for provider in providers:
                on_step(f"{mode.case_label(case)}: {provider.name}")
                mode_rows.append(
                    _measure(provider, case, mode, input_sets, expected[mode], stopwatch, ceilings, case in smallest)
                )
            yield _with_speedups(mode_rows)


def _measure(
    provider: Provider,
    case: AttentionCase,
    mode: Mode,
    input_sets: list[AttentionInputs],
    expected: dict[str, torch.Tensor],
    stopwatch: Stopwatch,
    ceilings: Ceilings,
    is_smallest: bool,
) -> AttentionRow:
    row = AttentionRow(case, provider.name, provider.label, mode)
    reason = provider.skip_reason(is_smallest)
    if reason is not None:
        return replace(row, reason=reason)

    with provider.context():
        errors, reason = _first_call_errors(provider, mode, input_sets, expected)
        if reason is not None:
            return replace(row, reason=reason)
        try:
            # Backward: each input set's forward runs here, its graph kept until the calls are dropped.
            calls = [timed_call(mode, provider, inputs) for inputs in input_sets]
            timing = stopwatch.measure(rotating(_call, calls))
            peak = peak_memory_bytes(calls[0], stopwatch.device)
        except torch.OutOfMemoryError as failure:  # the first call fitted, repeated ones did not
            calls = None  # drop the kept graphs first, so that the cache can give their memory back
            release_cached_memory(stopwatch.device)
            return replace(row, reason=f"out of memory while timing: {_first_line(str(failure))}")
    tflops = tflops_per_second(row.flops, timing.median_ms)
    return replace(
        row,
        timing=timing,
        tflops=tflops,
        ceiling_fraction=tflops / ceilings.matmul_tflops,
        errors=errors,
        peak_memory_bytes=peak,
    )


def _call(fn: Callable[[], object]) -> object:
    return fn()


def _first_call_errors(
    provider: Provider, mode: Mode, input_sets: list[AttentionInputs], expected: dict[str, torch.Tensor]
) -> tuple[dict[str, float] | None, str | None]:
    """(max abs error per output, None) when the provider runs on the first input set, else (None, why not).

    Every input set is prepared first (per-input state such as FlexAttention's block mask, kept out of the
    timing). Any exception counts as "cannot run this input": SDPA backends reject inputs with
    RuntimeError, and the warnings they emit on the way say why, so those are kept in the reason too.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            for inputs in input_sets:
                provider.prepare(inputs)
            outputs = checked_outputs(mode, provider, input_sets[0])
        except Exception as failure:  # reported in the row: see the docstring
            release_cached_memory(input_sets[0].q.device)
            return None, failure_reason(failure, caught)
    return max_abs_errors(outputs, expected), None


def release_cached_memory(device: torch.device) -> None:
    """After a failure (often out of memory), give the next provider an unfragmented pool."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


def failure_reason(failure: Exception, caught: list[warnings.WarningMessage]) -> str:
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


DisplayGroup = tuple[int, MaskKind, Mode]  # head dim, mask kind, mode


def by_display_group(rows: Iterable[AttentionRow]) -> dict[DisplayGroup, list[AttentionRow]]:
    """Rows grouped the way tables and plots show them, each group in sweep order."""
    groups: dict[DisplayGroup, list[AttentionRow]] = defaultdict(list)
    for row in rows:
        groups[row.case.head_dim, row.case.mask, row.mode].append(row)
    return dict(groups)


def group_title(head_dim: int, mask: MaskKind, mode: Mode) -> str:
    """How tables and plots name a display group."""
    title = f"D={head_dim}, mask: {mask.value}"
    return title if mode is Mode.FORWARD else f"{title}, {mode.value}"
