"""What every benchmark does to measure one provider on one case: the first call (checked against the
float64 result by the suite; any exception there, or a backend that did not run, makes the provider
unavailable for the case, with the reason and the warnings raised on the way), then the timed calls
rotated through the input sets, then the peak memory of one call.
"""

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from benchmarks.harness.memory import peak_memory_bytes
from benchmarks.harness.providers import Provider
from benchmarks.harness.rates import gigabytes_per_second
from benchmarks.harness.rows import Row
from benchmarks.harness.timing import Stopwatch, Timing, rotating


class Unavailable(Exception):
    """The provider did not run the case; the message says why."""


@dataclass(frozen=True)
class Measurement:
    outputs: object  # what the first call returned
    timing: Timing | None  # None for a provider that is not timed (a correctness check)
    peak_memory_bytes: int | None


def measure(
    provider: Provider,
    is_smallest_case: bool,
    stopwatch: Stopwatch,
    first_call: Callable[[], object],
    timed_calls: Callable[[], list[Callable[[], object]]],
    peak_call: Callable[[], object] | None = None,
) -> Measurement:
    """Inside the provider's context: `first_call()` (also the warm-up and any compile), then, for a timed
    provider, the calls `timed_calls()` builds, timed in rotation, then the peak memory of `peak_call`
    (default: the first timed call). Raises `Unavailable` when the provider is skipped or fails."""
    reason = provider.skip_reason(is_smallest_case)
    if reason is not None:
        raise Unavailable(reason)
    device = stopwatch.device
    with provider.context():
        outputs = _first_call(first_call, device)
        if not provider.timed:
            return Measurement(outputs, None, None)
        try:
            calls = timed_calls()  # may build state kept until the calls are dropped (a backward's graph)
            timing = stopwatch.measure(rotating(_call, calls))
            peak = peak_memory_bytes(peak_call or calls[0], device)
        except torch.OutOfMemoryError as failure:  # the first call fitted, repeated ones did not
            calls = None  # drop the kept state first, so that the cache can give its memory back
            release_cached_memory(device)
            raise Unavailable(f"out of memory while timing: {first_line(str(failure))}") from None
    return Measurement(outputs, timing, peak)


def measure_row(
    case,
    provider: Provider,
    is_smallest_case: bool,
    stopwatch: Stopwatch,
    first_call: Callable[[], object],
    timed_calls: Callable[[], list[Callable[[], object]]],
    values: Callable[[Measurement], dict],
) -> Row:
    """The row of `provider` on `case` (measured as `measure` says): its timing and `values(measurement)`,
    the suite's measurements by JSON field; or the reason it did not run."""
    try:
        measured = measure(provider, is_smallest_case, stopwatch, first_call, timed_calls)
    except Unavailable as why:
        return Row(case, provider.name, provider.label, reason=str(why))
    return Row(case, provider.name, provider.label, timing=measured.timing, values=values(measured))


def bandwidth_values(measured: Measurement, bytes_moved: int, expected: torch.Tensor, copy_gbps: float) -> dict:
    """A memory-bound op's measurements (docs/design.md): GB/s = (bytes read + written) / median time,
    its share of the card's measured copy GB/s, and max |output - float64 expected|."""
    gbps = gigabytes_per_second(bytes_moved, measured.timing.median_ms)
    return {"gbps": gbps, "copy_fraction": gbps / copy_gbps,
            "max_abs_error": (measured.outputs.double() - expected).abs().max().item()}


def _call(fn: Callable[[], object]) -> object:
    return fn()


def _first_call(call: Callable[[], object], device: torch.device) -> object:
    """Any exception counts as "cannot run this input": SDPA backends reject inputs with RuntimeError, and
    the warnings they emit on the way say why, so those are kept in the reason too."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return call()
        except Exception as failure:  # reported in the row: see the docstring
            release_cached_memory(device)
            raise Unavailable(failure_reason(failure, caught)) from None


def release_cached_memory(device: torch.device) -> None:
    """After a failure (often out of memory), give the next provider an unfragmented pool."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


def failure_reason(failure: Exception, caught: list[warnings.WarningMessage]) -> str:
    lines = [f"{type(failure).__name__}: {first_line(str(failure))}"]
    for warning in caught:
        line = first_line(str(warning.message))
        if line and line not in lines:
            lines.append(line)
    return "; ".join(lines)


def first_line(text: str) -> str:
    """Torch messages carry C++ source locations after the first line (and after "(Triggered")."""
    return text.strip().split("\n", 1)[0].split(" (Triggered internally", 1)[0]
