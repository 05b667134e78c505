"""Scaled dot-product attention written as the plain math, with torch SDPA's signature."""
import math

import torch


def _causal_keep(n_queries: int, n_keys: int, device: torch.device) -> torch.Tensor:
    """Top-left aligned causal mask, as torch SDPA defines it: query i sees keys 0..i."""
    return torch.ones(n_queries, n_keys, dtype=torch.bool, device=device).tril()


def default_scale(head_dim: int) -> float:
    """torch's default softmax scale 1 / sqrt(D). With D = 0 every score is 0 whatever the scale and
    torch returns the uniform average: 1.0 keeps that finite (1 / sqrt(0) would divide by zero)."""
    return 1.0 / math.sqrt(head_dim) if head_dim > 0 else 1.0


def attention_weights(
    query: torch.Tensor,
    key: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
) -> torch.Tensor:
    """softmax(q @ k^T * scale + mask), (..., H, Nq, Nk), with SDPA's mask semantics; a query row with
    no key left to attend gets all-zero weights (with finite gradients) instead of NaN."""
    scale = default_scale(query.size(-1)) if scale is None else scale
    scores = query @ key.transpose(-2, -1) * scale  # (..., H, Nq, Nk)
    if scores.size(-1) == 0:  # no key at all: every row attends nothing, and its output is zeros
        return scores
    if is_causal:
        scores = scores.masked_fill(~_causal_keep(query.size(-2), key.size(-2), scores.device), float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask

    row_max = scores.amax(dim=-1, keepdim=True)
    row_max = row_max.masked_fill(row_max == float("-inf"), 0.0)  # fully masked rows stay finite
    weights = torch.exp(scores - row_max)
    row_sum = weights.sum(dim=-1, keepdim=True)
    return weights / torch.where(row_sum > 0, row_sum, 1.0)  # fully masked rows: 0 / 1


def scaled_dot_product_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
    *,
    dropout_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """softmax(q @ k^T * scale + mask) @ v, with the semantics of torch SDPA.

    query (..., Hq, Nq, D), key (..., Hkv, Nk, D), value (..., Hkv, Nk, Dv).
    A bool mask keeps the scores where it is True; a float mask is added to them. A query row with
    no key left to attend to returns zeros (torch SDPA does the same) instead of NaN.
    `dropout_mask` (bool, broadcastable to the weights, True = keep) replaces dropout's random
    draw, so a fused kernel's dropout can be replayed exactly.
    """
    if enable_gqa and query.size(-3) != key.size(-3):
        group = query.size(-3) // key.size(-3)
        key = key.repeat_interleave(group, dim=-3)
        value = value.repeat_interleave(group, dim=-3)

    weights = attention_weights(query, key, attn_mask, is_causal, scale)  # (..., H, Nq, Nk)
    if dropout_p > 0.0 and dropout_mask is not None:
        weights = weights * dropout_mask / (1.0 - dropout_p)
    elif dropout_p > 0.0:
        weights = torch.nn.functional.dropout(weights, p=dropout_p)
    return weights.to(value.dtype) @ value  # (..., H, Nq, Dv); a float32 mask may have promoted weights
