"""The transformer benchmark's measurements: one `Row` per (part, case, provider).

Two parts: "forward" (the course's Transformer, tokens = batch x (source + target length)) and
"decode" (greedy decoding with the KV cache after a long prompt, tokens = batch x new tokens). A
provider that cannot run a case gives a row with the reason instead of numbers.
"""
from collections.abc import Callable, Iterator

import torch

from benchmarks.harness.measure import Unavailable, measure, release_cached_memory
from benchmarks.harness.providers import Provider
from benchmarks.harness.rows import Row
from benchmarks.harness.timing import Stopwatch
from benchmarks.transformer.cases import DecodeCase, ForwardCase
from benchmarks.transformer.providers import (
    TORCH,
    decode_inputs,
    decode_model,
    decode_providers,
    forward_inputs,
    forward_models,
    forward_providers,
)

MEASURED = {
    "forward": "the course's Transformer (d_model 512, 8 heads, 6 + 6 layers, FFN 2048) in eval mode, "
               "source and target of seq_len tokens, causal target mask: time per forward; tokens/s = "
               "batch x 2 x seq_len / median time; max |diff| against torch.nn.Transformer's output",
    "decode": "DecoderOnlyLM at the course's size (6 layers) with a KV cache: the prompt is prefilled "
              "(not timed), then new tokens are decoded greedily one model call each (timed); tokens/s = "
              "batch x new tokens / median time; peak memory covers cache allocation, prefill and decode; "
              "agreement = share of the greedy tokens equal to the torch backend's",
}


def measure_forward(cases: list[ForwardCase], dtype: torch.dtype, stopwatch: Stopwatch,
                    on_step: Callable[[str], None]) -> Iterator[Row]:
    device = stopwatch.device
    stock, ours = forward_models(device, dtype)
    yield from _measure_part(cases, forward_providers(stock, ours, device),
                             lambda case: forward_inputs(case, device, dtype), stopwatch, on_step)


def measure_decode(cases: list[DecodeCase], dtype: torch.dtype, stopwatch: Stopwatch,
                   on_step: Callable[[str], None]) -> Iterator[Row]:
    device = stopwatch.device
    model = decode_model(cases, device, dtype)
    yield from _measure_part(cases, decode_providers(device), lambda case: decode_inputs(model, case, device),
                             stopwatch, on_step)


def _measure_part(cases, providers: list[Provider], make_inputs: Callable, stopwatch: Stopwatch,
                  on_step: Callable[[str], None]) -> Iterator[Row]:
    """Every provider on each case in turn (the first case is the smallest: the interpreter runs only it)."""
    for case in cases:
        inputs = make_inputs(case)
        measured = []
        for provider in providers:
            on_step(f"{case.part} {case.label}: {provider.name}")
            measured.append(_measure(provider, case, inputs, case == cases[0], stopwatch))
        yield from _with_comparison(measured)


def _measure(provider: Provider, case: ForwardCase | DecodeCase, inputs, is_smallest: bool,
             stopwatch: Stopwatch) -> tuple[Row, torch.Tensor | None]:
    """The row of one provider on one case, and its output (None when it did not run). A provider's call
    sets its case up (the decode's cache and prefill, not timed) and returns the callable that is timed."""
    timed = []

    def set_up_and_run() -> torch.Tensor:
        timed.append(provider.call(inputs))
        return timed[0]()  # also the warm-up (and the autotuning)

    try:
        with torch.no_grad():
            measured = measure(provider, is_smallest, stopwatch, lambda: provider.checked(set_up_and_run),
                               lambda: timed, peak_call=lambda: provider.call(inputs)())
    except Unavailable as why:
        return Row(case, provider.name, provider.label, reason=str(why)), None
    finally:
        release_cached_memory(stopwatch.device)
    values = {"tokens_per_s": case.tokens / (measured.timing.median_ms * 1e-3),
              "peak_memory_bytes": measured.peak_memory_bytes}
    return Row(case, provider.name, provider.label, timing=measured.timing, values=values), measured.outputs


def _with_comparison(measured: list[tuple[Row, torch.Tensor | None]]) -> list[Row]:
    """Each row with its output compared to the torch provider's: max |diff| (forward) or the share of
    equal tokens (decode)."""
    expected = next((output for row, output in measured if row.provider == TORCH), None)
    compared = []
    for row, output in measured:
        if output is None or expected is None:
            compared.append(row)
        elif row.case.part == "forward":
            compared.append(row.with_values(max_abs_diff=(output.float() - expected.float()).abs().max().item()))
        else:
            compared.append(row.with_values(agreement=(output == expected).double().mean().item()))
    return compared
