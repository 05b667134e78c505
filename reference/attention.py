"""Scaled dot-product attention written as the plain math, with torch SDPA's signature, and the
attention variants of `kernels.attention` as keyword-only options:

- `window=(left, right)`: query i attends key j only if i - left <= j <= i + right (top-left
  positions, as `is_causal`; None for a side leaves it unbounded);
- `softcap=c`: the scaled scores become c * tanh(scores / c), before any bias or mask;
- `alibi_slopes` (Hq,) or (B, Hq): adds -slope * |i - j| to the (soft-capped) scores;
- `sinks` (Hq,): one logit per head that joins each row's softmax denominator and carries no value.

Every option is differentiable through autograd (the slopes and sinks included).
"""
import math

import torch


def _band_keep(n_queries: int, n_keys: int, window: tuple[int | None, int | None], device) -> torch.Tensor:
    """(Nq, Nk) bool, True where key j lies in query i's window: i - left <= j <= i + right.
    `is_causal` is the window (None, 0): top-left aligned, as torch SDPA defines it."""
    left, right = window
    offset = torch.arange(n_keys, device=device)[None, :] - torch.arange(n_queries, device=device)[:, None]  # j - i
    keep = torch.ones(n_queries, n_keys, dtype=torch.bool, device=device)
    if left is not None:
        keep &= offset >= -left
    if right is not None:
        keep &= offset <= right
    return keep


def _alibi_bias(slopes: torch.Tensor, n_queries: int, n_keys: int, dtype: torch.dtype) -> torch.Tensor:
    """-slope * |i - j| in `dtype`: (Hq, Nq, Nk) from (Hq,) slopes, (B, Hq, Nq, Nk) from (B, Hq) slopes."""
    positions_q = torch.arange(n_queries, device=slopes.device, dtype=dtype)
    positions_k = torch.arange(n_keys, device=slopes.device, dtype=dtype)
    distance = (positions_q[:, None] - positions_k[None, :]).abs()
    return -slopes.to(dtype)[..., None, None] * distance


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
    *,
    window: tuple[int | None, int | None] | None = None,
    softcap: float | None = None,
    alibi_slopes: torch.Tensor | None = None,
    sinks: torch.Tensor | None = None,
) -> torch.Tensor:
    """softmax(q @ k^T * scale + mask), (..., H, Nq, Nk), with SDPA's mask semantics; a query row with
    no key left to attend gets all-zero weights (with finite gradients) instead of NaN.

    The variants (see the module docstring) apply in this order: scale, soft-cap, ALiBi bias,
    masks (causal, window, attn_mask), then the softmax, whose denominator gains exp(sink) per head.
    `alibi_slopes` of shape (B, Hq) needs rank-4 inputs; (Hq,) slopes and sinks follow dim -3."""
    scale = default_scale(query.size(-1)) if scale is None else scale
    scores = query @ key.transpose(-2, -1) * scale  # (..., H, Nq, Nk)
    if scores.size(-1) == 0:  # no key at all: every row attends nothing, and its output is zeros
        return scores
    n_queries, n_keys = query.size(-2), key.size(-2)
    if softcap is not None:
        scores = softcap * torch.tanh(scores / softcap)
    if alibi_slopes is not None:
        bias_dtype = torch.promote_types(scores.dtype, alibi_slopes.dtype)
        scores = scores + _alibi_bias(alibi_slopes, n_queries, n_keys, bias_dtype)
    if is_causal:
        scores = scores.masked_fill(~_band_keep(n_queries, n_keys, (None, 0), scores.device), float("-inf"))
    if window is not None:
        scores = scores.masked_fill(~_band_keep(n_queries, n_keys, window, scores.device), float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask

    row_max = scores.amax(dim=-1, keepdim=True)
    sink = None
    if sinks is not None:
        sink = sinks[:, None, None]  # (Hq, 1, 1): one logit per head, joining every row of that head
        row_max = torch.maximum(row_max, sink)
    row_max = row_max.masked_fill(row_max == float("-inf"), 0.0)  # fully masked rows stay finite
    weights = torch.exp(scores - row_max)
    row_sum = weights.sum(dim=-1, keepdim=True)
    if sink is not None:
        row_sum = row_sum + torch.exp(sink - row_max)  # the sink's weight, paired with no value
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
    window: tuple[int | None, int | None] | None = None,
    softcap: float | None = None,
    alibi_slopes: torch.Tensor | None = None,
    sinks: torch.Tensor | None = None,
) -> torch.Tensor:
    """softmax(q @ k^T * scale + mask) @ v, with the semantics of torch SDPA.

    query (..., Hq, Nq, D), key (..., Hkv, Nk, D), value (..., Hkv, Nk, Dv).
    A bool mask keeps the scores where it is True; a float mask is added to them. A query row with
    no key left to attend to returns zeros (torch SDPA does the same) instead of NaN.
    `dropout_mask` (bool, broadcastable to the weights, True = keep) replaces dropout's random
    draw, so a fused kernel's dropout can be replayed exactly. `window`, `softcap`, `alibi_slopes`
    and `sinks` are the variants of the module docstring (as in `attention_weights`).
    """
    if enable_gqa and query.size(-3) != key.size(-3):
        group = query.size(-3) // key.size(-3)
        key = key.repeat_interleave(group, dim=-3)
        value = value.repeat_interleave(group, dim=-3)

    weights = attention_weights(query, key, attn_mask, is_causal, scale, window=window, softcap=softcap,
                                alibi_slopes=alibi_slopes, sinks=sinks)  # (..., H, Nq, Nk)
    if dropout_p > 0.0 and dropout_mask is not None:
        weights = weights * dropout_mask / (1.0 - dropout_p)
    elif dropout_p > 0.0:
        weights = torch.nn.functional.dropout(weights, p=dropout_p)
    return weights.to(value.dtype) @ value  # (..., H, Nq, Dv); a float32 mask may have promoted weights
