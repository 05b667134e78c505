"""The one timing method of every benchmark, the ceilings' as much as the rows': the median and p20-p80
spread of a callable's times over enough samples for a spread, and the rotation of input sets that keeps
inputs out of L2.

CUDA: `triton.testing.do_bench` (CUDA events, warm-up and repeat budgets in milliseconds, L2 flushed
before each repetition). CPU: the stopwatch's own thread count for every measurement, the same warm-up,
then blocks of calls (each long enough for the clock) until there are enough samples or the time cap
is reached. A timing whose spread is too wide (or that has too few samples) is flagged: it cannot be
ranked against others, whatever its median says. The pytest-benchmark suites hand the same samples to
pytest-benchmark (`harness/pytest_timing.py`).
"""

import contextlib
import itertools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import torch
import triton.testing

T = TypeVar("T")

# Input sets occupy together at least this many times the L2 size, so a timed call never finds its
# inputs left in L2 by the previous one (do_bench's own flush covers the rest; tiny inputs stop at the cap).
_L2_OVERSUBSCRIPTION = 2
_MAX_INPUT_SETS = 64

# A timing ranks against others only with a p20-p80 spread within this fraction of its median, from at
# least this many samples (fewer make p20 and p80 two of a handful of numbers, or the median itself).
RANKABLE_SPREAD = 0.25
MIN_SAMPLES_TO_RANK = 5

# CPU sampling: each sample is a block of calls lasting at least _CPU_BLOCK_S (the clock's resolution and
# the loop's overhead stay negligible), collected until the stopwatch's sample count or its time cap.
_CPU_BLOCK_S = 0.005


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p20_ms: float
    p80_ms: float
    samples: int

    @classmethod
    def of_samples(cls, samples_ms: Sequence[float]) -> "Timing":
        p20, median, p80 = np.percentile(samples_ms, [20, 50, 80])
        return cls(float(median), float(p20), float(p80), len(samples_ms))

    @property
    def relative_spread(self) -> float:
        """(p80 - p20) / median."""
        return (self.p80_ms - self.p20_ms) / self.median_ms

    @property
    def too_noisy_to_rank(self) -> bool:
        return self.samples < MIN_SAMPLES_TO_RANK or self.relative_spread > RANKABLE_SPREAD


def timing_record(timing: Timing | None) -> dict:
    """The JSON fields of a timing; None values for a provider that was not timed."""
    return {
        "median_ms": timing.median_ms if timing else None,
        "p20_ms": timing.p20_ms if timing else None,
        "p80_ms": timing.p80_ms if timing else None,
        "samples": timing.samples if timing else None,
        "too_noisy_to_rank": timing.too_noisy_to_rank if timing else None,
    }


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """torch's intra-op thread count set to `threads` for the block, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _block_seconds(fn: Callable[[], object], calls: int, clock: Callable[[], float] = time.perf_counter) -> float:
    start = clock()
    for _ in range(calls):
        fn()
    return clock() - start


@dataclass(frozen=True)
class Stopwatch:
    """How every measurement of a run is timed; on the CPU with `threads` intra-op threads, fixed when
    the stopwatch is made, so that the ceilings and the rows run on the same threads. With
    `thread_cpu_time`, a CPU sample is the calling thread's CPU time instead of the wall clock's: time
    the thread spent preempted by other processes is not counted (all of a call's work, with one thread;
    the warm-up and the time cap stay on the wall clock)."""

    device: torch.device
    quick: bool = False
    threads: int = field(default_factory=torch.get_num_threads)
    thread_cpu_time: bool = False

    @property
    def _cuda_budget_ms(self) -> tuple[int, int]:
        return (10, 25) if self.quick else (25, 100)

    @property
    def cpu_samples(self) -> int:
        """The samples a CPU timing aims for (fewer only when the time cap comes first)."""
        return 10 if self.quick else 30

    @property
    def _cpu_warmup_s(self) -> float:
        return 0.05 if self.quick else 0.2

    @property
    def _cpu_time_cap_s(self) -> float:
        return 2.0 if self.quick else 10.0

    def describe(self) -> str:
        noisy = (f"'noisy': p20-p80 wider than {RANKABLE_SPREAD:.0%} of the median or under {MIN_SAMPLES_TO_RANK} "
                 "samples, too wide to rank")
        if self.device.type == "cuda":
            warmup, rep = self._cuda_budget_ms
            return f"triton.testing.do_bench median and p20-p80, warm-up {warmup} ms, repeat {rep} ms; {noisy}"
        clock = " of the calling thread's CPU time (preemption not counted)" if self.thread_cpu_time else ""
        return (
            f"median and p20-p80 of {self.cpu_samples} blocks{clock} of >= {_CPU_BLOCK_S * 1e3:g} ms (fewer past "
            f"{self._cpu_time_cap_s:g} s), after {self._cpu_warmup_s * 1e3:g} ms of warm-up calls, {self.threads} "
            f"threads, the ceilings alike; {noisy}"
        )

    def samples_ms(self, fn: Callable[[], object]) -> list[float]:
        """Milliseconds per call: one per do_bench repetition on CUDA, one per timed block on the CPU."""
        if self.device.type == "cuda":
            warmup, rep = self._cuda_budget_ms
            return list(triton.testing.do_bench(fn, warmup=warmup, rep=rep, return_mode="all"))
        with _torch_threads(self.threads):
            return self._cpu_samples_ms(fn)

    def _cpu_samples_ms(self, fn: Callable[[], object]) -> list[float]:
        """Warm-up calls for the warm-up time (at least one), then blocks sized from the warm-up's calls."""
        calls_per_block = max(1, math.ceil(_CPU_BLOCK_S / self._cpu_warmup_call_seconds(fn)))
        samples_ms: list[float] = []
        deadline = time.perf_counter() + self._cpu_time_cap_s
        clock = time.thread_time if self.thread_cpu_time else time.perf_counter
        while len(samples_ms) < self.cpu_samples and (not samples_ms or time.perf_counter() < deadline):
            samples_ms.append(_block_seconds(fn, calls_per_block, clock) / calls_per_block * 1e3)
        return samples_ms

    def measure(self, fn: Callable[[], object]) -> Timing:
        return Timing.of_samples(self.samples_ms(fn))

    def difference(self, baseline: Callable[[], object], candidate: Callable[[], object]) -> Timing:
        """`candidate`'s time per call minus `baseline`'s, on the CPU: the median and p20-p80 over rounds
        of one block of each, alternating which goes first. Two medians measured one after the other
        carry whatever the machine did in between (another job starting, a frequency change), which is
        larger than a microsecond of Python; in a round both blocks see the same machine."""
        if self.device.type == "cuda":
            raise ValueError("Stopwatch.difference times host calls on the CPU; a CUDA timing is do_bench's")
        with _torch_threads(self.threads):
            calls_per_block = max(1, math.ceil(_CPU_BLOCK_S / self._cpu_warmup_call_seconds(baseline)))
            self._cpu_warmup_call_seconds(candidate)
            clock = time.thread_time if self.thread_cpu_time else time.perf_counter
            differences_ms: list[float] = []
            deadline = time.perf_counter() + 2 * self._cpu_time_cap_s
            while len(differences_ms) < 2 * self.cpu_samples and (
                    not differences_ms or time.perf_counter() < deadline):
                if len(differences_ms) % 2 == 0:
                    baseline_s = _block_seconds(baseline, calls_per_block, clock)
                    candidate_s = _block_seconds(candidate, calls_per_block, clock)
                else:
                    candidate_s = _block_seconds(candidate, calls_per_block, clock)
                    baseline_s = _block_seconds(baseline, calls_per_block, clock)
                differences_ms.append((candidate_s - baseline_s) / calls_per_block * 1e3)
        return Timing.of_samples(differences_ms)

    def _cpu_warmup_call_seconds(self, fn: Callable[[], object]) -> float:
        """Warm-up calls of `fn` for the warm-up time (at least one); the mean seconds per call."""
        calls, seconds = 0, 0.0
        while calls == 0 or seconds < self._cpu_warmup_s:
            seconds += _block_seconds(fn, 1)
            calls += 1
        return seconds / calls


def input_sets_needed(bytes_per_set: int, device: torch.device) -> int:
    """How many distinct input sets to rotate through so that the timed inputs are not cache-resident."""
    if device.type != "cuda":
        return 1
    l2_bytes = torch.cuda.get_device_properties(device).L2_cache_size
    return min(_MAX_INPUT_SETS, max(1, math.ceil(_L2_OVERSUBSCRIPTION * l2_bytes / bytes_per_set)))


def rotating_input_sets(make: Callable[[int], T], device: torch.device) -> list[T]:
    """`make(seed)` for seeds 0, 1, ...: as many input sets (each with an `nbytes`) as the timed calls
    must rotate through so that their inputs are not sitting in the GPU's L2 (`input_sets_needed`).
    Seed 0's set is the one the error is checked on."""
    first = make(0)
    return [first] + [make(seed) for seed in range(1, input_sets_needed(first.nbytes, device))]


def rotating(fn: Callable[[T], object], input_sets: Sequence[T]) -> Callable[[], object]:
    """A no-argument callable that applies `fn` to the next input set on each call."""
    cycle = itertools.cycle(input_sets)
    return lambda: fn(next(cycle))
