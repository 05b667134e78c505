"""The attention implementations compared side by side, each as a callable on `AttentionInputs`."""

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import triton
from torch.nn.attention import SDPBackend, sdpa_kernel

import kernels
import reference
from benchmarks.attention_inputs import AttentionInputs
from benchmarks.flex_provider import FlexAttention, flex_unavailable_reason, recompile_budget

OURS = "ours"
SDPA_DEFAULT = "sdpa-default"  # torch's own backend choice: the baseline of the speedup column
REFERENCE = "reference"
FLEX = "flex"
_SDPA_BACKENDS = {
    "sdpa-flash": SDPBackend.FLASH_ATTENTION,
    "sdpa-efficient": SDPBackend.EFFICIENT_ATTENTION,
    "sdpa-cudnn": SDPBackend.CUDNN_ATTENTION,
    "sdpa-math": SDPBackend.MATH,
}
INTERPRETER_LABEL = "triton (interpreter: error check only, time is not a speed)"
_SMALLEST_ONLY = "Triton's interpreter runs the smallest shape only (an error check, not a speed)"


def _nothing_to_prepare(inputs: AttentionInputs) -> None:
    return None


@dataclass(frozen=True)
class Provider:
    name: str
    label: str
    call: Callable[[AttentionInputs], torch.Tensor]
    # Entered around the whole measurement, so that its cost stays out of the timed calls.
    context: Callable[[], AbstractContextManager] = contextlib.nullcontext
    # Called on every input set before the first call, outside the timing (per-input state, such as
    # FlexAttention's block mask built from the mask tensor).
    prepare: Callable[[AttentionInputs], None] = _nothing_to_prepare
    # Known before trying: the provider cannot run on this device at all.
    unavailable_reason: str | None = None
    # Triton's interpreter is a correctness tool, far too slow to sweep shapes with.
    smallest_case_only: bool = False
    # The `kernels` backend that must be the one that ran (a silent fallback would time the wrong code).
    kernels_backend: str | None = None

    def skip_reason(self, is_smallest_case: bool) -> str | None:
        """Why this provider is not even tried on a case; None when it is."""
        if self.unavailable_reason is None and self.smallest_case_only and not is_smallest_case:
            return _SMALLEST_ONLY
        return self.unavailable_reason

    def call_checked(self, inputs: AttentionInputs) -> torch.Tensor:
        """One call that also proves, where it applies, that the intended `kernels` backend ran."""
        if self.kernels_backend is None:
            return self.call(inputs)
        with kernels.record_backends() as ran:
            output = self.call(inputs)
        if list(ran) != [self.kernels_backend]:
            raise RuntimeError(f"backend={self.kernels_backend!r} was asked for, but {list(ran)} ran")
        return output


def attention_providers(device: torch.device, names: list[str] | None = None) -> list[Provider]:
    """Every provider for this device (or the named ones, in that order)."""
    sdpa_backends = [_sdpa(name, backend) for name, backend in _SDPA_BACKENDS.items()]
    providers = [_ours(device), _sdpa_default(), *sdpa_backends, flex_provider(device), _reference()]
    if names is None:
        return providers
    by_name = {p.name: p for p in providers}
    return [by_name[name] for name in names]


def _ours(device: torch.device) -> Provider:
    def call(x: AttentionInputs) -> torch.Tensor:
        return kernels.attention(
            x.q, x.k, x.v, attn_mask=x.attn_mask, is_causal=x.is_causal, backend="triton"
        )

    return ours_provider(call, device)


def ours_provider(call: Callable, device: torch.device) -> Provider:
    """Our Triton kernel as a provider: timed on CUDA, an error check only in the interpreter,
    reported unavailable (with the reason) on a CPU without it."""
    if device.type == "cuda":
        return Provider(OURS, "ours (triton)", call, kernels_backend="triton")
    if triton.knobs.runtime.interpret:
        return Provider(OURS, INTERPRETER_LABEL, call, smallest_case_only=True, kernels_backend="triton")
    reason = "the Triton kernels need CUDA here; set TRITON_INTERPRET=1 to check them in the interpreter"
    return Provider(OURS, "ours (triton)", call, unavailable_reason=reason)


def _torch_sdpa(x: AttentionInputs) -> torch.Tensor:
    return F.scaled_dot_product_attention(x.q, x.k, x.v, attn_mask=x.attn_mask, is_causal=x.is_causal)


def _sdpa_default() -> Provider:
    return Provider(SDPA_DEFAULT, "SDPA default", _torch_sdpa)


def _sdpa(name: str, backend: SDPBackend) -> Provider:
    label = f"SDPA {name.removeprefix('sdpa-')} only"
    return Provider(name, label, _torch_sdpa, context=lambda: sdpa_kernel([backend]))


def _reference() -> Provider:
    def call(x: AttentionInputs) -> torch.Tensor:
        return reference.scaled_dot_product_attention(
            x.q, x.k, x.v, attn_mask=x.attn_mask, is_causal=x.is_causal
        )

    return Provider(REFERENCE, "reference eager", call)


def flex_provider(device: torch.device) -> Provider:
    """FlexAttention compiled with torch.compile; unavailable, with the reason, where it cannot compile."""
    label = "FlexAttention (compiled)"
    reason = flex_unavailable_reason(device)
    if reason is not None:
        return Provider(FLEX, label, _not_runnable, unavailable_reason=reason)
    flex = FlexAttention(device)
    return Provider(FLEX, label, flex, context=recompile_budget, prepare=flex.prepare)


def _not_runnable(inputs: AttentionInputs) -> torch.Tensor:
    raise RuntimeError("an unavailable provider was called")
