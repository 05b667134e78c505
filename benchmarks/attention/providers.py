"""The attention implementations compared side by side, each a `Provider` calling on `AttentionInputs`:
ours, torch SDPA's default and each of its backends, FlexAttention (compiled), the eager reference, and
on packed documents ours through `kernels.varlen_attention`.
Query heads may outnumber key/value heads (GQA, as in decode): every call passes `enable_gqa` then."""

from dataclasses import replace

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
VARLEN = "ours-varlen"  # kernels.varlen_attention on a `documents` case's packed documents
_SDPA_BACKENDS = {
    "sdpa-flash": SDPBackend.FLASH_ATTENTION,
    "sdpa-efficient": SDPBackend.EFFICIENT_ATTENTION,
    "sdpa-cudnn": SDPBackend.CUDNN_ATTENTION,
    "sdpa-math": SDPBackend.MATH,
}


def attention_providers(device: torch.device, names: list[str] | None = None,
                        check_ours_in_child: bool = False, varlen: bool = False) -> list[Provider]:
    """Every provider for this device (or the named ones, in that order). `check_ours_in_child`: on a CPU
    without Triton's interpreter, ours is checked (not timed) in an interpreter child process; forward
    only, since its output comes back without autograd. `varlen`: also ours through varlen_attention
    (the packed documents' provider; it runs no other case)."""
    sdpa_backends = [_sdpa(name, backend) for name, backend in _SDPA_BACKENDS.items()]
    providers = [ours_provider(call_ours, device, check_ours_in_child), _sdpa_default(), *sdpa_backends,
                 flex_provider(device), _reference()]
    if varlen:
        packed = ours_provider(call_ours_varlen, device, check_ours_in_child)
        providers.insert(1, replace(packed, name=VARLEN, label=f"{packed.label}, varlen_attention"))
    if names is None:
        return providers
    by_name = {p.name: p for p in providers}
    return [by_name[name] for name in names]


def call_ours(x: AttentionInputs) -> torch.Tensor:
    if x.key_padding is not None:  # padded documents: causal over each row's valid keys
        return kernels.causal_attention_with_key_padding(x.q, x.k, x.v, x.key_padding, enable_gqa=x.grouped,
                                                         backend="triton")
    return kernels.attention(
        x.q, x.k, x.v, attn_mask=x.attn_mask, is_causal=x.is_causal, enable_gqa=x.grouped, backend="triton",
        **x.variants,
    )


def call_ours_varlen(x: AttentionInputs) -> torch.Tensor:
    """varlen_attention on a `documents` case, q, k, v viewed as (B * H * N, 1, D): each (batch row,
    head)'s documents are sequences of one head (`PackedDocuments.cu_seqlens`), the same attention as
    the dense mask's with nothing copied or padded; the output viewed back as (B, H, N, D)."""
    if x.documents is None:
        raise NotImplementedError("varlen_attention runs the packed documents only (the documents case)")
    batch, heads, n, _ = x.q.shape
    q, k, v = (t.view(-1, 1, t.size(-1)) for t in x.leaves)  # q, k, v are contiguous
    longest = max(x.documents.lengths)
    out = kernels.varlen_attention(q, k, v, x.documents.cu_seqlens, x.documents.cu_seqlens, longest, longest,
                                   is_causal=True, backend="triton")
    return out.view(batch, heads, n, out.size(-1))


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
