"""The decode sweep: every case x every provider, one `DecodeRow` each.

Providers are the attention benchmark's own (ours, SDPA default and each SDPA backend, the eager
reference), called with `enable_gqa` when the heads differ, plus ours forced onto the normal kernel
(no split) to show what split-K gains. A provider that cannot run a case gives a row with the reason.
"""
import contextlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

import kernels
import reference
from benchmarks.attention_inputs import AttentionInputs
from benchmarks.attention_providers import OURS, REFERENCE, SDPA_DEFAULT, Provider, attention_providers
from benchmarks.attention_suite import failure_reason, release_cached_memory
from benchmarks.ceilings import Ceilings
from benchmarks.decode_inputs import DecodeCase, float64_expected, decode_input_sets, smallest_cases
from benchmarks.memory import peak_memory_bytes
from benchmarks.timing import Stopwatch, Timing, rotating, timing_record
from kernels.sdpa.triton.decode import force_num_splits, plan_num_splits

NO_SPLIT = "ours-no-split"
# Off CUDA `kernels.attention` never splits; the interpreter check forces this many splits instead.
INTERPRETER_SPLITS = 4
MEASURED = (
    "decode attention, softmax(q K^T / sqrt(D)) V with few queries over a full KV cache, no mask: time per "
    "call; GB/s = (q + K + V read + out written) / median time, K and V counted once per key/value head "
    "(the least any implementation moves); error = max |out - float64| on the same inputs; splits = the "
    "key splits our kernel ran with (1 = the normal kernel)"
)
CPU_NOTE = "the CPU caches are small enough to stay in cache, so their GB/s may exceed the 64 MiB copy's"


@dataclass(frozen=True)
class DecodeRow:
    case: DecodeCase
    provider: str
    label: str
    reason: str | None = None  # why the provider is unavailable for this case; None when it ran
    timing: Timing | None = None
    num_splits: int | None = None  # ours only
    gbps: float | None = None
    copy_fraction: float | None = None  # of the measured device-to-device copy
    speedup_vs_sdpa_default: float | None = None
    max_abs_error: float | None = None
    peak_memory_bytes: int | None = None

    @property
    def available(self) -> bool:
        return self.reason is None

    def as_record(self) -> dict:
        case = self.case
        return {
            "batch": case.batch,
            "heads_q": case.heads_q,
            "heads_kv": case.heads_kv,
            "n_queries": case.n_queries,
            "context": case.context,
            "head_dim": case.head_dim,
            "provider": self.provider,
            "label": self.label,
            "available": self.available,
            "reason": self.reason,
            "num_splits": self.num_splits,
            **timing_record(self.timing),
            "gbps": self.gbps,
            "copy_fraction": self.copy_fraction,
            "speedup_vs_sdpa_default": self.speedup_vs_sdpa_default,
            "max_abs_error": self.max_abs_error,
            "peak_memory_bytes": self.peak_memory_bytes,
        }


def _gqa(x: AttentionInputs) -> bool:
    return x.q.size(1) != x.k.size(1)


def _ours(x: AttentionInputs) -> torch.Tensor:
    return kernels.attention(x.q, x.k, x.v, enable_gqa=_gqa(x), backend="triton")


def _sdpa(x: AttentionInputs) -> torch.Tensor:
    return F.scaled_dot_product_attention(x.q, x.k, x.v, enable_gqa=_gqa(x))


def _reference(x: AttentionInputs) -> torch.Tensor:
    return reference.scaled_dot_product_attention(x.q, x.k, x.v, enable_gqa=_gqa(x))


def decode_providers(device: torch.device) -> list[Provider]:
    """Ours with the splits `kernels.attention` picks (on CUDA; in the interpreter forced to
    INTERPRETER_SPLITS, so that the split-K kernels are what gets checked), ours on the normal kernel,
    SDPA default and each SDPA backend, the eager reference."""
    providers = []
    for provider in attention_providers(device):
        if provider.name == OURS:
            splits = contextlib.nullcontext if device.type == "cuda" else lambda: force_num_splits(INTERPRETER_SPLITS)
            providers.append(replace(provider, call=_ours, label=f"{provider.label}, split-K", context=splits))
            providers.append(replace(provider, name=NO_SPLIT, call=_ours, label=f"{provider.label}, no split",
                                     context=lambda: force_num_splits(1)))
        elif provider.name == REFERENCE:
            providers.append(replace(provider, call=_reference))
        elif provider.name.startswith("sdpa-"):
            providers.append(replace(provider, call=_sdpa))
    return providers


def measure_cases(
    cases: list[DecodeCase],
    dtype: torch.dtype,
    stopwatch: Stopwatch,
    ceilings: Ceilings,
    on_step: Callable[[str], None] = lambda description: None,
) -> Iterator[list[DecodeRow]]:
    """Measure every provider on each case in turn, yielding the rows of one case (so that a run
    stopped early keeps every finished case); `on_step` is called before each (case, provider)."""
    providers = decode_providers(stopwatch.device)
    smallest = smallest_cases(cases)
    for case in cases:
        input_sets = decode_input_sets(case, dtype, stopwatch.device)
        expected = float64_expected(input_sets[0])
        rows = []
        for provider in providers:
            on_step(f"{case.label}: {provider.name}")
            rows.append(_measure(provider, case, dtype, input_sets, expected, stopwatch, ceilings, case in smallest))
        yield _with_speedups(rows)


def _measure(
    provider: Provider,
    case: DecodeCase,
    dtype: torch.dtype,
    input_sets: list[AttentionInputs],
    expected: torch.Tensor,
    stopwatch: Stopwatch,
    ceilings: Ceilings,
    is_smallest: bool,
) -> DecodeRow:
    row = DecodeRow(case, provider.name, provider.label)
    reason = provider.skip_reason(is_smallest)
    if reason is not None:
        return replace(row, reason=reason)
    first = input_sets[0]
    with provider.context():
        if provider.name in (OURS, NO_SPLIT):
            row = replace(row, num_splits=plan_num_splits(first.q, first.k, is_causal=False, dropout=None))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                output = provider.call_checked(first)  # also the warm-up (and the compile)
            except Exception as failure:  # SDPA backends reject inputs with RuntimeError: see the reason
                release_cached_memory(stopwatch.device)
                return replace(row, reason=failure_reason(failure, caught))
        try:
            timing = stopwatch.measure(rotating(provider.call, input_sets))
            peak = peak_memory_bytes(lambda: provider.call(first), stopwatch.device)
        except torch.OutOfMemoryError as failure:  # the first call fitted, repeated ones did not
            release_cached_memory(stopwatch.device)
            return replace(row, reason=f"out of memory while timing: {failure_reason(failure, [])}")
    gbps = case.bytes_moved(dtype) / (timing.median_ms * 1e-3) / 1e9
    return replace(
        row,
        timing=timing,
        gbps=gbps,
        copy_fraction=gbps / ceilings.copy_gbps,
        max_abs_error=(output.double() - expected).abs().max().item(),
        peak_memory_bytes=peak,
    )


def _with_speedups(rows: list[DecodeRow]) -> list[DecodeRow]:
    """Each timed row's speed-up over SDPA's default on the same case (its time / the row's)."""
    baseline = next((r.timing for r in rows if r.provider == SDPA_DEFAULT and r.timing), None)
    if baseline is None:
        return rows
    return [replace(r, speedup_vs_sdpa_default=baseline.median_ms / r.timing.median_ms) if r.timing else r
            for r in rows]
