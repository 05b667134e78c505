"""The decode sweep: every case x every provider (`decode/providers.py`), one `Row` each, in GB/s against
the card's measured copy ceiling. A provider that cannot run a case gives a row with the reason."""

from collections.abc import Callable, Iterator
from functools import partial

import torch

from benchmarks.attention.cases import AttentionInputs
from benchmarks.attention.providers import SDPA_DEFAULT
from benchmarks.decode.cases import DecodeCase, decode_input_sets, float64_expected, smallest_cases
from benchmarks.decode.providers import NO_SPLIT, decode_providers
from benchmarks.harness.ceilings import Ceilings
from benchmarks.harness.measure import Measurement, bandwidth_values, measure_row
from benchmarks.harness.providers import OURS, Provider
from benchmarks.harness.rows import Row, with_speedup_over
from benchmarks.harness.timing import Stopwatch
from kernels.sdpa.triton.decode import plan_num_splits

MEASURED = (
    "decode attention, softmax(q K^T / sqrt(D)) V with few queries over a full KV cache, no mask: time per "
    "call; GB/s = (q + K + V read + out written) / median time, K and V counted once per key/value head "
    "(the least any implementation moves); error = max |out - float64| on the same inputs; splits = the "
    "key splits our kernel ran with (1 = the normal kernel)"
)
CPU_NOTE = "the CPU caches are small enough to stay in cache, so their GB/s may exceed the 64 MiB copy's"


def measure_cases(
    cases: list[DecodeCase],
    dtype: torch.dtype,
    stopwatch: Stopwatch,
    ceilings: Ceilings,
    on_step: Callable[[str], None] = lambda description: None,
) -> Iterator[list[Row]]:
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
        yield with_speedup_over(rows, SDPA_DEFAULT, "speedup_vs_sdpa_default")


def _measure(provider: Provider, case: DecodeCase, dtype: torch.dtype, input_sets: list[AttentionInputs],
             expected: torch.Tensor, stopwatch: Stopwatch, ceilings: Ceilings, is_smallest: bool) -> Row:
    first = input_sets[0]
    splits = {}

    def first_call() -> torch.Tensor:
        if provider.name in (OURS, NO_SPLIT):  # the key splits our kernel runs with, planned in its context
            splits["num_splits"] = plan_num_splits(first.q, first.k, is_causal=False, dropout=None)
        return provider.call_checked(first)

    def values(measured: Measurement) -> dict:
        return {**bandwidth_values(measured, case.bytes_moved(dtype), expected, ceilings.copy_gbps),
                "peak_memory_bytes": measured.peak_memory_bytes}

    row = measure_row(case, provider, is_smallest, stopwatch, first_call,
                      lambda: [partial(provider.call, inputs) for inputs in input_sets], values)
    return row.with_values(**splits)  # also when the first call failed: with the splits it was planned with
