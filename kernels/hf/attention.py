"""The attention function transformers calls for attn_implementation="triton".

It receives what transformers' sdpa path receives (see `triton_attention_forward`) and returns what it
returns, but runs `kernels.attention`: grouped-query attention through `enable_gqa` (no repeated
keys/values), padding and T5's position bias as one mask, and dropout only in training. Gemma 2's
`softcap`, gpt-oss's sinks (`s_aux`) and the ALiBi slopes of a patched BLOOM (kernels/hf/alibi.py) map
onto the attention variants, which every backend runs; so does a layer's `sliding_window` in a
padding-free batch, where no mask carries it (a padded batch's mask holds the window already).
"""
import torch
from torch import nn

from kernels.hf.masks import causal_key_padding, with_position_bias
from kernels.hf.packing import HFPacking, packing_to_run
from kernels.sdpa.functional import attention, causal_attention_with_key_padding
from kernels.sdpa.varlen import varlen_attention
from kernels.sdpa.masks import causal_keep_mask

try:  # transformers 5.x: where models that drop `output_attentions` collect the weights
    from transformers.utils import output_capturing
except ImportError:
    output_capturing = None

# Keyword arguments some models pass that change the attention's result and that the kernel does
# not implement: refused when set, rather than silently ignored.
UNSUPPORTED_ARGUMENTS = {
    "head_mask": "a head mask",
}
# Keyword arguments some models pass that are attention variants of `kernels.attention`, by its name.
VARIANT_ARGUMENTS = {
    "softcap": "softcap",  # Gemma 2's logit soft-capping
    "s_aux": "sinks",  # gpt-oss's attention sinks
    "sinks": "sinks",
    "alibi_slopes": "alibi_slopes",  # BLOOM, through kernels.hf.patch_alibi_attention
}


def attention_weights_requested(kwargs: dict) -> bool:
    """Whether the caller asked for attention weights. Most models pass `output_attentions` on to the
    attention function; others (GPT-2) drop it and let transformers' output recorder collect the
    weights each attention module returns, which we see as the recorder's active collection."""
    if kwargs.get("output_attentions"):
        return True
    if output_capturing is None or torch.compiler.is_compiling():  # dynamo cannot trace a ContextVar
        return False
    collecting = getattr(output_capturing, "_active_collector", None)
    collected = collecting.get() if collecting is not None else None
    return bool(collected) and any(key.endswith("attentions") for key in collected)


def check_supported_arguments(kwargs: dict) -> None:
    for name, feature in UNSUPPORTED_ARGUMENTS.items():
        if kwargs.get(name) is not None:
            raise ValueError(
                f"attn_implementation='triton' does not support {feature} (`{name}` was given); "
                "use attn_implementation='eager' for this model"
            )
    if attention_weights_requested(kwargs):
        raise ValueError(
            "attn_implementation='triton' never materialises attention weights, so output_attentions=True "
            "cannot be honoured; use attn_implementation='eager' to get them"
        )


def variant_options(kwargs: dict) -> dict:
    """The variant options the call carries, as `kernels.attention` keywords."""
    return {variant: kwargs[name] for name, variant in VARIANT_ARGUMENTS.items() if kwargs.get(name) is not None}


def triton_attention_forward(
    module: nn.Module,
    query: torch.Tensor,  # (B, Hq, Nq, D)
    key: torch.Tensor,  # (B, Hkv, Nk, D)
    value: torch.Tensor,  # (B, Hkv, Nk, Dv)
    attention_mask: torch.Tensor | None,  # bool (True = attend) or additive, broadcast to (B, Hq, Nq, Nk)
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    position_bias: torch.Tensor | None = None,  # T5: additive, (1 or B, Hq, Nq, Nk)
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """Returns (output (B, Nq, Hq, Dv), None): no attention weights, as transformers' sdpa path.

    Causality follows transformers' sdpa path: `is_causal` (else `module.is_causal`) applies only when
    no mask is given and there is more than one query; a decode step (one query) sees every key. When a
    causal call has more keys than queries, the queries are taken to be the last positions (a KV cache),
    never torch's top-left alignment. A padded prefill's mask from `triton_mask` (flagged: causal over
    these keys) runs as causal + key padding in one kernel call. A padding-free (packed) batch runs
    through `kernels.varlen_attention` (see kernels/hf/packing.py).
    """
    check_supported_arguments(kwargs)
    variants = variant_options(kwargs)
    n_queries, n_keys = query.size(2), key.size(2)
    dropout_p = float(dropout) if getattr(module, "training", False) else 0.0
    enable_gqa = query.size(1) != key.size(1)
    packing = packing_to_run(attention_mask, kwargs) if position_bias is None else None
    if packing is not None:
        causal = packing.causal if packing.causal is not None else is_causal
        causal = getattr(module, "is_causal", True) if causal is None else causal
        if kwargs.get("sliding_window") is not None:  # no mask carries it here: transformers' key > query - window
            variants["window"] = (int(kwargs["sliding_window"]) - 1, 0)
        return packed_attention(query, key, value, packing, bool(causal), dropout_p, scaling, variants), None
    key_padding = causal_key_padding(attention_mask)
    if key_padding is not None:
        if n_queries == n_keys and position_bias is None:
            out = causal_attention_with_key_padding(query, key, value, key_padding, dropout_p=dropout_p, scale=scaling,
                                                    enable_gqa=enable_gqa, **variants)
            return out.transpose(1, 2).contiguous(), None
        causal_part = causal_keep_mask(n_queries, n_keys, query.device, past_keys=n_keys - n_queries)
        attention_mask = causal_part & attention_mask  # materialise causality
    wants_causal = getattr(module, "is_causal", True) if is_causal is None else is_causal
    causal = bool(wants_causal) and n_queries > 1 and attention_mask is None
    mask = attention_mask
    if causal and (n_queries < n_keys or position_bias is not None):
        mask, causal = causal_keep_mask(n_queries, n_keys, query.device, past_keys=n_keys - n_queries), False
    if position_bias is not None:
        mask = with_position_bias(position_bias, mask)
    out = attention(
        query, key, value,
        attn_mask=mask,
        dropout_p=dropout_p,
        is_causal=causal,
        scale=scaling,
        enable_gqa=enable_gqa,
        **variants,
    )
    return out.transpose(1, 2).contiguous(), None  # the kernel's output is laid out (B, Nq, Hq, Dv): no copy


def packed_attention(query, key, value, packing: HFPacking, causal: bool, dropout_p: float,
                     scale: float | None, variants: dict) -> torch.Tensor:
    """(B, H, N, D) tensors whose rows hold packed sequences -> (B, Nq, Hq, Dv), by `varlen_attention`
    on the flattened (B * N, H, D) tokens (a view when the heads were split off a (B, N, H * D) tensor);
    `variants` (softcap, sinks) apply per sequence."""
    batch, heads_q, n_queries, _ = query.shape
    q, k, v = (t.transpose(1, 2).reshape(-1, t.size(1), t.size(3)) for t in (query, key, value))
    out = varlen_attention(q, k, v, packing.cu_seqlens_q, packing.cu_seqlens_k, packing.max_seqlen_q,
                           packing.max_seqlen_k, dropout_p=dropout_p, is_causal=causal, scale=scale,
                           enable_gqa=heads_q != key.size(1), **variants)
    return out.view(batch, n_queries, heads_q, -1)
