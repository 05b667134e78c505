"""The transformer benchmark's cases and measurements: one `TransformerRow` per (part, case, provider).

Two parts: "forward" (the course's Transformer, tokens = batch x (source + target length)) and
"decode" (greedy decoding with the KV cache after a long prompt, tokens = batch x new tokens). A
provider that cannot run a case gives a row with the reason instead of numbers.
"""
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import torch

import kernels
from benchmarks.attention_providers import Provider
from benchmarks.memory import peak_memory_bytes
from benchmarks.timing import Stopwatch, Timing, timing_record
from benchmarks.transformer_workloads import (
    TORCH,
    DecodeCase,
    ForwardCase,
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
_CPU_VOCAB, _GPU_VOCAB = 1000, 32000


@dataclass(frozen=True)
class TransformerRow:
    part: str  # "forward" or "decode"
    case: ForwardCase | DecodeCase
    provider: str
    label: str
    reason: str | None = None  # why the provider did not run this case; None when it ran
    timing: Timing | None = None
    tokens_per_s: float | None = None
    peak_memory_bytes: int | None = None
    max_abs_diff: float | None = None  # forward: against torch.nn.Transformer's output
    agreement: float | None = None  # decode: share of tokens equal to the torch backend's

    @property
    def available(self) -> bool:
        return self.reason is None

    def as_record(self) -> dict:
        return {
            "part": self.part,
            **vars(self.case),
            "tokens": self.case.tokens,
            "provider": self.provider,
            "label": self.label,
            "available": self.available,
            "reason": self.reason,
            **timing_record(self.timing),
            "tokens_per_s": self.tokens_per_s,
            "peak_memory_bytes": self.peak_memory_bytes,
            "max_abs_diff": self.max_abs_diff,
            "agreement": self.agreement,
        }


def forward_cases(device: torch.device, quick: bool) -> list[ForwardCase]:
    if device.type == "cuda":
        return [ForwardCase(8, 512)] + ([] if quick else [ForwardCase(4, 2048)])
    return [ForwardCase(2, 32)] + ([] if quick else [ForwardCase(2, 128)])


def decode_cases(device: torch.device, quick: bool) -> list[DecodeCase]:
    if device.type == "cuda":
        contexts = (1024, 4096) if quick else (1024, 4096, 16384, 32768)
        return [DecodeCase(4, context, 16 if quick else 32, _GPU_VOCAB) for context in contexts]
    contexts = (128,) if quick else (128, 512)
    return [DecodeCase(2, context, 4 if quick else 8, _CPU_VOCAB) for context in contexts]


def measure_forward(cases, dtype, stopwatch: Stopwatch, on_step: Callable[[str], None]) -> Iterator[TransformerRow]:
    device = stopwatch.device
    stock, ours = forward_models(device, dtype)
    providers = forward_providers(stock, ours, device)
    yield from _measure_part("forward", cases, providers, lambda case: forward_inputs(case, device, dtype),
                             stopwatch, on_step)


def measure_decode(cases, dtype, stopwatch: Stopwatch, on_step: Callable[[str], None]) -> Iterator[TransformerRow]:
    device = stopwatch.device
    model = decode_model(cases, device, dtype)
    yield from _measure_part("decode", cases, decode_providers(device),
                             lambda case: decode_inputs(model, case, device), stopwatch, on_step)


def _measure_part(part: str, cases, providers: list[Provider], make_inputs: Callable, stopwatch: Stopwatch,
                  on_step: Callable[[str], None]) -> Iterator[TransformerRow]:
    """Every provider on each case in turn (the first case is the smallest: the interpreter runs only it)."""
    for case in cases:
        inputs = make_inputs(case)
        measured = []
        for provider in providers:
            on_step(f"{part} {case.label}: {provider.name}")
            measured.append(_measure(part, provider, case, inputs, case == cases[0], stopwatch))
        yield from _with_comparison(measured)


def _measure(part: str, provider: Provider, case, inputs, is_smallest: bool,
             stopwatch: Stopwatch) -> tuple[TransformerRow, torch.Tensor | None]:
    """The row of one provider on one case, and its output (None when it did not run)."""
    row = TransformerRow(part, case, provider.name, provider.label)
    reason = provider.skip_reason(is_smallest)
    if reason is not None:
        return replace(row, reason=reason), None
    try:
        with torch.no_grad():
            with kernels.record_backends() as ran:
                timed = provider.call(inputs)
                output = timed()  # also the warm-up (and the autotuning)
            if provider.kernels_backend is not None and set(ran) != {provider.kernels_backend}:
                raise RuntimeError(f"backend {provider.kernels_backend!r} was asked for, but {sorted(set(ran))} ran")
            timing = stopwatch.measure(timed)
            peak = peak_memory_bytes(lambda: provider.call(inputs)(), stopwatch.device)
    except Exception as failure:  # reported in the row: out of memory, a backend that did not run
        first_line = str(failure).strip().split("\n", 1)[0]
        return replace(row, reason=f"{type(failure).__name__}: {first_line}"), None
    finally:
        if stopwatch.device.type == "cuda":
            torch.cuda.empty_cache()
    tokens_per_s = case.tokens / (timing.median_ms * 1e-3)
    return replace(row, timing=timing, tokens_per_s=tokens_per_s, peak_memory_bytes=peak), output


def _with_comparison(measured: list[tuple[TransformerRow, torch.Tensor | None]]) -> list[TransformerRow]:
    """Each row with its output compared to the torch provider's: max |diff| (forward) or the share of
    equal tokens (decode)."""
    expected = next((output for row, output in measured if row.provider == TORCH), None)
    compared = []
    for row, output in measured:
        if output is None or expected is None:
            compared.append(row)
        elif row.part == "forward":
            compared.append(replace(row, max_abs_diff=(output.float() - expected.float()).abs().max().item()))
        else:
            compared.append(replace(row, agreement=(output == expected).double().mean().item()))
    return compared
