"""The one timing method of every benchmark: the median and p20-p80 spread of a callable's times, with
the library timer that fits the device, and the rotation of input sets that keeps inputs out of L2.

CUDA: `triton.testing.do_bench` (CUDA events, warm-up and repeat budgets in milliseconds, L2 flushed
before each repetition). CPU: `torch.utils.benchmark.Timer.blocked_autorange` on all intra-op threads.
The pytest-benchmark suites hand the same samples to pytest-benchmark (`harness/pytest_timing.py`).
"""

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import triton.testing
from torch.utils.benchmark import Timer

T = TypeVar("T")

# Input sets occupy together at least this many times the L2 size, so a timed call never finds its
# inputs left in L2 by the previous one (do_bench's own flush covers the rest; tiny inputs stop at the cap).
_L2_OVERSUBSCRIPTION = 2
_MAX_INPUT_SETS = 64


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p20_ms: float
    p80_ms: float

    @classmethod
    def of_samples(cls, samples_ms: Sequence[float]) -> "Timing":
        p20, median, p80 = np.percentile(samples_ms, [20, 50, 80])
        return cls(float(median), float(p20), float(p80))


def timing_record(timing: Timing | None) -> dict:
    """The JSON fields of a timing; None values for a provider that was not timed."""
    return {
        "median_ms": timing.median_ms if timing else None,
        "p20_ms": timing.p20_ms if timing else None,
        "p80_ms": timing.p80_ms if timing else None,
    }


@dataclass(frozen=True)
class Stopwatch:
    device: torch.device
    quick: bool = False

    @property
    def _cuda_budget_ms(self) -> tuple[int, int]:
        return (10, 25) if self.quick else (25, 100)

    @property
    def _cpu_min_run_time_s(self) -> float:
        return 0.05 if self.quick else 0.2

    def describe(self) -> str:
        if self.device.type == "cuda":
            warmup, rep = self._cuda_budget_ms
            return f"triton.testing.do_bench median and p20-p80, warm-up {warmup} ms, repeat {rep} ms"
        return (
            f"torch.utils.benchmark.Timer.blocked_autorange(min_run_time={self._cpu_min_run_time_s}) "
            f"median and p20-p80 over blocks, {torch.get_num_threads()} threads"
        )

    def samples_ms(self, fn: Callable[[], object]) -> list[float]:
        """Milliseconds per call: one per do_bench repetition on CUDA, one per timed block on the CPU."""
        if self.device.type == "cuda":
            warmup, rep = self._cuda_budget_ms
            return list(triton.testing.do_bench(fn, warmup=warmup, rep=rep, return_mode="all"))
        timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
        measurement = timer.blocked_autorange(min_run_time=self._cpu_min_run_time_s)
        return [seconds * 1e3 for seconds in measurement.times]

    def measure(self, fn: Callable[[], object]) -> Timing:
        return Timing.of_samples(self.samples_ms(fn))


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
