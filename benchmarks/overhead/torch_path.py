"""The torch path's overhead: `kernels.attention` on its torch backend against
`F.scaled_dot_product_attention` called directly with the same arguments, and the drop-in
`kernels.nn.MultiheadAttention` against `torch.nn.MultiheadAttention` (same weights). Both sides of a
pair run the same torch kernel, so the difference of their medians is what our Python adds per call."""
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

import kernels
from benchmarks.harness.measure import measure_row
from benchmarks.harness.providers import Provider
from benchmarks.harness.rows import Row
from benchmarks.harness.timing import Stopwatch
from benchmarks.overhead.cases import OverheadCase

SDPA = Provider("sdpa", "F.scaled_dot_product_attention", lambda inputs: F.scaled_dot_product_attention(**inputs))
OURS_TORCH = Provider("ours", "kernels.attention (torch backend)", lambda inputs: kernels.attention(**inputs),
                      context=lambda: kernels.use_backend("torch"), kernels_backend="torch")
TORCH_MODULE = Provider("torch_module", "torch.nn.MultiheadAttention", lambda call: call["torch"]())
OURS_MODULE = Provider("ours_module", "kernels.nn.MultiheadAttention (torch backend)", lambda call: call["ours"](),
                       context=lambda: kernels.use_backend("torch"), kernels_backend="torch")
MODULE_CASE = OverheadCase("module", (1, 8, 8, 16, 16, 64), "self-attention, batch_first, need_weights=False")


def _pair_rows(case: OverheadCase, providers: tuple[Provider, Provider], inputs, stopwatch: Stopwatch) -> list[Row]:
    """The baseline's row and ours, each timed on its own; then ours gets `added_us` (microseconds), the
    median of ours minus the baseline over rounds that time a block of each back to back
    (`Stopwatch.difference`, with `added_p20_us` and `added_p80_us`), and `added_fraction` = that over
    the baseline's median: the machine-independent number (issue 14 measured SDPA at 14 us on its
    machine, so 2 us added is 14% there)."""
    rows = [measure_row(case, provider, True, stopwatch, lambda provider=provider: provider.call_checked(inputs),
                        lambda provider=provider: [lambda: provider.call(inputs)],
                        lambda measured: {"median_us": measured.timing.median_ms * 1e3})
            for provider in providers]
    baseline, ours = rows
    if baseline.timing and ours.timing:
        baseline_provider, our_provider = providers
        with baseline_provider.context(), our_provider.context():  # ours' backend override leaves torch's alone
            added = stopwatch.difference(lambda: baseline_provider.call(inputs), lambda: our_provider.call(inputs))
        rows[1] = ours.with_values(added_us=added.median_ms * 1e3, added_p20_us=added.p20_ms * 1e3,
                                   added_p80_us=added.p80_ms * 1e3,
                                   added_fraction=added.median_ms * 1e3 / baseline["median_us"])
    return rows


def _module_calls(dtype: torch.dtype) -> dict[str, Callable[[], object]]:
    batch, heads, _, length, _, head_dim = MODULE_CASE.shape
    embed = heads * head_dim
    torch.manual_seed(0)
    reference_module = torch.nn.MultiheadAttention(embed, heads, batch_first=True, dtype=dtype).eval()
    ours = kernels.nn.MultiheadAttention.from_torch(reference_module).eval()
    x = torch.randn(batch, length, embed, dtype=dtype)
    return {"torch": lambda: reference_module(x, x, x, need_weights=False),
            "ours": lambda: ours(x, x, x, need_weights=False)}


def measure_torch_path(cases: list[OverheadCase], dtype: torch.dtype, stopwatch: Stopwatch,
                       on_step: Callable[[str], None]) -> Iterator[list[Row]]:
    """Per case, SDPA's row then ours; then the modules' pair."""
    with torch.no_grad():
        for case in cases:
            on_step(case.label)
            yield _pair_rows(case, (SDPA, OURS_TORCH), case.inputs(dtype), stopwatch)
        on_step(MODULE_CASE.label)
        yield _pair_rows(MODULE_CASE, (TORCH_MODULE, OURS_MODULE), _module_calls(dtype), stopwatch)
