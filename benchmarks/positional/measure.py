"""The positional-encoding sweep: every case x every provider of its op, one `Row` each, in GB/s against
the card's measured copy ceiling and as speed-ups over the op's baselines. A provider that cannot run a
case (our Triton kernels without CUDA, out of memory) gives a row with the reason instead of numbers.
"""
from collections.abc import Callable, Iterator
from functools import partial

import torch

from benchmarks.harness.ceilings import Ceilings
from benchmarks.harness.measure import Measurement, bandwidth_values, measure_row
from benchmarks.harness.providers import Provider
from benchmarks.harness.rows import Row, speedups_over
from benchmarks.harness.timing import Stopwatch, rotating_input_sets
from benchmarks.positional.cases import (
    PositionalCase,
    PositionalInputs,
    float64_expected,
    make_inputs,
    smallest_cases,
)
from benchmarks.positional.providers import BASELINES, positional_providers

MEASURED = (
    "sinusoidal positional encoding, x + pe (encode), and the fused embedding, the rows of weight picked by "
    "the ids * sqrt(d) + pe (embed): time per call; GB/s = (one read of x or of the picked rows and ids + "
    "one write of the output) / median time, the least any implementation moves; error = max |out - float64| "
    "on the same inputs"
)
CPU_NOTE = "the CPU cases are small enough to stay in cache, so their GB/s may exceed the 64 MiB copy's"


def measure_cases(
    cases: list[PositionalCase],
    dtype: torch.dtype,
    stopwatch: Stopwatch,
    ceilings: Ceilings,
    on_step: Callable[[str], None] = lambda description: None,
) -> Iterator[list[Row]]:
    """Measure every provider on each case in turn, yielding the rows of one case (so that a run
    stopped early keeps every finished case); `on_step` is called before each (case, provider)."""
    smallest = smallest_cases(cases)
    device = stopwatch.device
    for case in cases:
        input_sets = rotating_input_sets(lambda seed: make_inputs(case, dtype, device, seed), device)
        expected = float64_expected(case, input_sets[0])
        rows = []
        for provider in positional_providers(case, dtype, device):
            on_step(f"{case.op.value} {case.label}: {provider.name}")
            rows.append(_measure(provider, case, dtype, input_sets, expected, stopwatch, ceilings, case in smallest))
        speedups = speedups_over(rows, BASELINES[case.op])
        yield [row.with_values(speedups=over) if over is not None else row
               for row, over in zip(rows, speedups, strict=True)]


def _measure(provider: Provider, case: PositionalCase, dtype: torch.dtype, input_sets: list[PositionalInputs],
             expected: torch.Tensor, stopwatch: Stopwatch, ceilings: Ceilings, is_smallest: bool) -> Row:
    def values(measured: Measurement) -> dict:
        return bandwidth_values(measured, case.bytes_moved(dtype), expected, ceilings.copy_gbps)

    return measure_row(case, provider, is_smallest, stopwatch, lambda: provider.call_checked(input_sets[0]),
                       lambda: [partial(provider.call, inputs) for inputs in input_sets], values)
