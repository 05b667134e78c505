"""The attention implementations compared side by side, each a `Provider` calling on `AttentionInputs`:
ours, torch SDPA's default and each of its backends, FlexAttention (compiled), the eager reference.
Query heads may outnumber key/value heads (GQA, as in decode): every call passes `enable_gqa` then."""

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

import kernels
import reference
from benchmarks.attention.cases import AttentionInputs, sdpa_equivalent
from benchmarks.attention.flex import FlexAttention, flex_unavailable_reason, recompile_budget
from benchmarks.harness.providers import Provider, ours_provider

SDPA_DEFAULT = "sdpa-default"  # torch's own backend choice: the baseline of the speedup column
REFERENCE = "reference"
FLEX = "flex"
_SDPA_BACKENDS = {
    "sdpa-flash": SDPBackend.FLASH_ATTENTION,
    "sdpa-efficient": SDPBackend.EFFICIENT_ATTENTION,
    "sdpa-cudnn": SDPBackend.CUDNN_ATTENTION,
    "sdpa-math": SDPBackend.MATH,
}


def attention_providers(device: torch.device, names: list[str] | None = None,
                        check_ours_in_child: bool = False) -> list[Provider]:
    """Every provider for this device (or the named ones, in that order). `check_ours_in_child`: on a CPU
    without Triton's interpreter, ours is checked (not timed) in an interpreter child process; forward
    only, since its output comes back without autograd."""
    sdpa_backends = [_sdpa(name, backend) for name, backend in _SDPA_BACKENDS.items()]
    providers = [ours_provider(call_ours, device, check_ours_in_child), _sdpa_default(), *sdpa_backends,
                 flex_provider(device), _reference()]
    if names is None:
        return providers
    by_name = {p.name: p for p in providers}
    return [by_name[name] for name in names]


def call_ours(x: AttentionInputs) -> torch.Tensor:
    return kernels.attention(
        x.q, x.k, x.v, attn_mask=x.attn_mask, is_causal=x.is_causal, enable_gqa=x.grouped, backend="triton",
        **x.variants,
    )


def _torch_sdpa(x: AttentionInputs) -> torch.Tensor:
    """SDPA on the inputs, a score variant given as its equivalent mask (cases.sdpa_equivalent; built per
    call, inside the timing, as a user without the variant would pay it)."""
    attn_mask, is_causal = sdpa_equivalent(x)
    return F.scaled_dot_product_attention(x.q, x.k, x.v, attn_mask=attn_mask, is_causal=is_causal,
                                          enable_gqa=x.grouped)


def _sdpa_default() -> Provider:
    return Provider(SDPA_DEFAULT, "SDPA default", _torch_sdpa)


def _sdpa(name: str, backend: SDPBackend) -> Provider:
    label = f"SDPA {name.removeprefix('sdpa-')} only"
    return Provider(name, label, _torch_sdpa, context=lambda: sdpa_kernel([backend]))


def _reference() -> Provider:
    def call(x: AttentionInputs) -> torch.Tensor:
        return reference.scaled_dot_product_attention(
            x.q, x.k, x.v, attn_mask=x.attn_mask, is_causal=x.is_causal, enable_gqa=x.grouped, **x.variants
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
