"""The harness's one timing method on the CPU: enough samples for a spread even for slow calls, the
stopwatch's threads for every call, the ceilings timed exactly as the rows, and a flag on timings too
noisy to rank. Mechanics only: no speed is asserted."""

import itertools
import time

import pytest
import torch
from rich.console import Console

from benchmarks.harness import ceilings as ceilings_module
from benchmarks.harness import timing as timing_method
from benchmarks.harness.tables import ceilings_table, timing_cells
from benchmarks.harness.timing import Stopwatch, Timing, timing_record

CPU = torch.device("cpu")


def test_a_slow_call_still_gets_the_samples_a_spread_needs():
    stopwatch = Stopwatch(CPU, quick=True)
    samples = stopwatch.samples_ms(lambda: time.sleep(0.03))  # several calls per 50 ms of the old budget
    assert len(samples) == stopwatch.cpu_samples >= timing_method.MIN_SAMPLES_TO_RANK
    assert all(sample >= 30 for sample in samples)


def test_a_thread_cpu_time_stopwatch_leaves_out_the_time_its_thread_waits():
    """A sleeping call costs its thread no CPU time, so neither do the other processes holding the core
    (the overhead suite's samples); the warm-up and the time cap stay on the wall clock."""
    stopwatch = Stopwatch(CPU, quick=True, thread_cpu_time=True)
    samples = stopwatch.samples_ms(lambda: time.sleep(0.01))
    assert len(samples) == stopwatch.cpu_samples and max(samples) < 5
    assert "CPU time" in stopwatch.describe() and "CPU time" not in Stopwatch(CPU, quick=True).describe()


def test_a_difference_pairs_blocks_of_both_calls_in_alternating_order():
    """Stopwatch.difference: candidate minus baseline per call, one block of each per round, the first
    block alternating between them (so neither always runs on the caches the other left)."""
    stopwatch = Stopwatch(CPU, quick=True)
    starts = []

    def call(name, seconds):
        def timed():
            starts.append(name)
            time.sleep(seconds)
        return timed

    difference = stopwatch.difference(call("baseline", 0.001), call("candidate", 0.003))
    assert difference.samples == 2 * stopwatch.cpu_samples
    assert 1.5 < difference.median_ms < 3.0  # about the 2 ms more each candidate call sleeps
    runs = [(name, len(list(calls))) for name, calls in itertools.groupby(starts)]
    block = runs[2][1]  # after the two warm-ups: baseline, candidate | candidate, baseline | baseline, ...
    assert [name for name, _ in runs[2:6]] == ["baseline", "candidate", "baseline", "candidate"]
    assert [length for _, length in runs[2:6]] == [block, 2 * block, 2 * block, 2 * block]
    with pytest.raises(ValueError, match="CPU"):
        Stopwatch(torch.device("cuda")).difference(call("a", 0), call("b", 0))


def test_every_timed_call_runs_on_the_stopwatch_s_threads_and_the_count_is_restored():
    before = torch.get_num_threads()
    stopwatch = Stopwatch(CPU, quick=True, threads=1)
    seen = []
    stopwatch.samples_ms(lambda: seen.append(torch.get_num_threads()))
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == before


def test_the_ceilings_are_timed_by_the_rows_stopwatch_same_threads_same_samples(monkeypatch):
    small = ceilings_module._Sizes(torch.float32, 64, 1 << 20)  # the method, not the card: small and fast
    monkeypatch.setattr(ceilings_module, "_sizes", lambda device: small)
    threads_seen = []
    real_mm = torch.mm
    monkeypatch.setattr(torch, "mm", lambda *args, **kwargs: threads_seen.append(torch.get_num_threads())
                        or real_mm(*args, **kwargs))
    stopwatch = Stopwatch(CPU, quick=True, threads=1)
    ceilings = ceilings_module.measure_ceilings.__wrapped__(stopwatch)
    row = stopwatch.measure(lambda: torch.ones(8).sum())
    assert set(threads_seen) == {1}
    assert ceilings.matmul_timing.samples == ceilings.copy_timing.samples == row.samples == stopwatch.cpu_samples
    assert ceilings.matmul_tflops == pytest.approx(2 * 64**3 / (ceilings.matmul_timing.median_ms * 1e-3) / 1e12)
    console = Console(width=200)
    with console.capture() as screen:
        console.print(ceilings_table(ceilings))
    assert screen.get().count(f"n={stopwatch.cpu_samples}") == 2


@pytest.mark.parametrize(
    ("samples_ms", "noisy"),
    [
        ([10.0, 10.1, 10.2, 9.9, 10.0, 10.1], False),
        ([10.0, 20.0, 5.0, 10.0, 30.0, 10.0], True),  # p20-p80 far wider than the median's quarter
        ([10.0, 10.0], True),  # too few samples for a spread
        ([10.0], True),
    ],
)
def test_a_timing_too_noisy_to_rank_is_flagged_in_the_json_and_the_table(samples_ms, noisy):
    timing = Timing.of_samples(samples_ms)
    assert timing.samples == len(samples_ms)
    assert timing.too_noisy_to_rank is noisy
    assert timing_record(timing)["too_noisy_to_rank"] is noisy and timing_record(timing)["samples"] == len(samples_ms)
    median_cell, spread_cell = timing_cells(timing)
    assert median_cell.endswith(" noisy") is noisy
    assert spread_cell.endswith(f"n={len(samples_ms)}")


def test_the_rankable_spread_is_a_share_of_the_median():
    spread, samples = timing_method.RANKABLE_SPREAD, timing_method.MIN_SAMPLES_TO_RANK
    assert not Timing(median_ms=100.0, p20_ms=90.0, p80_ms=90.0 + 100 * spread, samples=samples).too_noisy_to_rank
    assert Timing(median_ms=100.0, p20_ms=90.0, p80_ms=91.0 + 100 * spread, samples=samples).too_noisy_to_rank
