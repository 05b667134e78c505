"""The positional-encoding sweep: every case x every provider of its op, one `PositionalRow` each.

A provider that cannot run a case (our Triton kernels without CUDA, out of memory) gives a row with the
reason instead of numbers: nothing is dropped silently.
"""
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import torch

from benchmarks.attention_providers import Provider
from benchmarks.ceilings import Ceilings
from benchmarks.positional_inputs import (
    Op,
    PositionalCase,
    PositionalInputs,
    float64_expected,
    make_inputs,
    smallest_cases,
)
from benchmarks.positional_providers import BASELINES, positional_providers
from benchmarks.timing import Stopwatch, Timing, rotating, rotating_input_sets, timing_record

MEASURED = (
    "sinusoidal positional encoding, x + pe (encode), and the fused embedding, the rows of weight picked by "
    "the ids * sqrt(d) + pe (embed): time per call; GB/s = (one read of x or of the picked rows and ids + "
    "one write of the output) / median time, the least any implementation moves; error = max |out - float64| "
    "on the same inputs"
)
CPU_NOTE = "the CPU cases are small enough to stay in cache, so their GB/s may exceed the 64 MiB copy's"
_GPU_TOKENS = 32 * 1024  # B * N per case: 64 MiB of bf16 at d = 1024, far above L2
_GPU_VOCAB = 32000


@dataclass(frozen=True)
class PositionalRow:
    case: PositionalCase
    provider: str
    label: str
    reason: str | None = None  # why the provider is unavailable for this case; None when it ran
    timing: Timing | None = None
    gbps: float | None = None
    copy_fraction: float | None = None  # of the measured device-to-device copy
    speedups: dict[str, float] | None = None  # over each of the op's baselines (positional_providers.BASELINES)
    max_abs_error: float | None = None

    @property
    def available(self) -> bool:
        return self.reason is None

    def as_record(self) -> dict:
        return {
            "op": self.case.op.value,
            "batch": self.case.batch,
            "seq_len": self.case.seq_len,
            "d_model": self.case.d_model,
            "vocab_size": self.case.vocab_size,
            "provider": self.provider,
            "label": self.label,
            "available": self.available,
            "reason": self.reason,
            **timing_record(self.timing),
            "gbps": self.gbps,
            "copy_fraction": self.copy_fraction,
            "speedups": self.speedups,
            "max_abs_error": self.max_abs_error,
        }


def positional_cases(device: torch.device, quick: bool) -> list[PositionalCase]:
    """GPU: 32k tokens at d = 512 to 4096, plus one decode step (N = 1). CPU: a small honest set."""
    if device.type == "cuda":
        widths = (1024, 4096) if quick else (512, 1024, 2048, 4096)
        lengths = (2048,) if quick else (512, 4096)
        encode = [PositionalCase(Op.ENCODE, _GPU_TOKENS // n, n, d) for d in widths for n in lengths]
        decode = [PositionalCase(Op.ENCODE, 64, 1, 4096)]
        embed = [PositionalCase(Op.EMBED, _GPU_TOKENS // 2048, 2048, d, _GPU_VOCAB) for d in widths]
        return encode + decode + embed
    shapes = [(2, 128, 64), (4, 256, 256)] + ([] if quick else [(8, 512, 512)])
    return [PositionalCase(Op.ENCODE, *shape) for shape in shapes] + [
        PositionalCase(Op.EMBED, *shape, vocab_size=1000) for shape in shapes]


def measure_cases(
    cases: list[PositionalCase],
    dtype: torch.dtype,
    stopwatch: Stopwatch,
    ceilings: Ceilings,
    on_step: Callable[[str], None] = lambda description: None,
) -> Iterator[list[PositionalRow]]:
    """Measure every provider on each case in turn, yielding the rows of one case (so that a run
    stopped early keeps every finished case); `on_step` is called before each (case, provider)."""
    smallest = smallest_cases(cases)
    for case in cases:
        device = stopwatch.device
        input_sets = rotating_input_sets(lambda seed: make_inputs(case, dtype, device, seed), device)
        expected = float64_expected(case, input_sets[0])
        rows = []
        for provider in positional_providers(case, dtype, stopwatch.device):
            on_step(f"{case.op.value} {case.label}: {provider.name}")
            rows.append(_measure(provider, case, dtype, input_sets, expected, stopwatch, ceilings, case in smallest))
        yield _with_speedups(rows, BASELINES[case.op])


def _measure(
    provider: Provider,
    case: PositionalCase,
    dtype: torch.dtype,
    input_sets: list[PositionalInputs],
    expected: torch.Tensor,
    stopwatch: Stopwatch,
    ceilings: Ceilings,
    is_smallest: bool,
) -> PositionalRow:
    row = PositionalRow(case, provider.name, provider.label)
    reason = provider.skip_reason(is_smallest)
    if reason is not None:
        return replace(row, reason=reason)
    try:
        output = provider.call_checked(input_sets[0])  # also the warm-up (and the compile)
        timing = stopwatch.measure(rotating(provider.call, input_sets))
    except Exception as failure:  # reported in the row: out of memory, a backend that did not run
        first_line = str(failure).strip().split("\n", 1)[0]
        return replace(row, reason=f"{type(failure).__name__}: {first_line}")
    gbps = case.bytes_moved(dtype) / (timing.median_ms * 1e-3) / 1e9
    return replace(
        row,
        timing=timing,
        gbps=gbps,
        copy_fraction=gbps / ceilings.copy_gbps,
        max_abs_error=(output.double() - expected).abs().max().item(),
    )


def _with_speedups(rows: list[PositionalRow], baselines: tuple[str, ...]) -> list[PositionalRow]:
    """Each timed row's speed-up over each baseline that ran (time of the baseline / its time)."""
    baseline_ms = {r.provider: r.timing.median_ms for r in rows if r.provider in baselines and r.timing}
    return [
        replace(r, speedups={name: ms / r.timing.median_ms for name, ms in baseline_ms.items()}) if r.timing else r
        for r in rows
    ]


def rows_by_op(rows: list[PositionalRow]) -> dict[Op, list[PositionalRow]]:
    grouped: dict[Op, list[PositionalRow]] = {}
    for row in rows:
        grouped.setdefault(row.case.op, []).append(row)
    return grouped
