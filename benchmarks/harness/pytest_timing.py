"""The pytest-benchmark suites' timing: the harness's own method (`Stopwatch`: do_bench on CUDA, sample
blocks on the CPU, the same as every `python -m benchmarks` command), its samples handed to pytest-benchmark as
its rounds, so that its tables, --benchmark-json and --benchmark-compare show the harness's numbers.

pytest-benchmark reads its clock before and after each round; the clock given to it here replays the
stopwatch's samples, so each round lasts exactly one sample and the round itself runs nothing.
"""

import itertools
from collections.abc import Callable, Sequence

from benchmarks.harness.timing import Stopwatch


class ReplayedSamples:
    """A clock whose successive readings are (start, end) of each sample in turn."""

    __name__ = "harness Stopwatch samples"

    def __init__(self, samples_s: Sequence[float]) -> None:
        starts = itertools.accumulate(samples_s, initial=0.0)
        self._readings = itertools.chain.from_iterable(
            (start, start + sample) for start, sample in zip(starts, samples_s)
        )

    def __call__(self) -> float:
        return next(self._readings)


def _nothing() -> None:
    return None


def benchmark_call(benchmark, stopwatch: Stopwatch, call: Callable[[], object]) -> float | None:
    """Time `call` with the stopwatch and record its samples in pytest-benchmark's `benchmark` fixture.
    The median in seconds; None under --benchmark-disable, where the call runs once, untimed."""
    if benchmark.disabled:
        benchmark.pedantic(call)
        return None
    samples_s = [milliseconds / 1e3 for milliseconds in stopwatch.samples_ms(call)]
    benchmark._timer = ReplayedSamples(samples_s)  # the fixture's clock: no public setter per test
    benchmark.pedantic(_nothing, rounds=len(samples_s))
    return benchmark.stats.stats.median
