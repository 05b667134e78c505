"""The attention variants on the torch backend (see kernels/sdpa/variants.py for what each means).

Two paths, both differentiable through autograd (slopes, sinks and a float `attn_mask` included):
- window and ALiBi alone fold into one mask or bias for torch SDPA, which keeps its fused kernels;
  ALiBi only for float32/float64 inputs, since a half-precision bias rounds -slope * |i - j|
  (at distance 2000 a bf16 bias is off by up to 8);
- soft-capping and sinks (and ALiBi in half precision) need the scores themselves: they are computed
  explicitly, in float32 (float64 for float64 inputs), grouped-query heads read as a reshape of the
  query, never a repeat of the keys and values.
"""
import torch
import torch.nn.functional as F

import reference
from kernels.sdpa.masks import window_keep_mask

_BIAS_EXACT_DTYPES = (torch.float32, torch.float64)


def _keep_mask(n_queries: int, n_keys: int, device, window, is_causal: bool) -> torch.Tensor | None:
    """The window intersected with causality, as one (Nq, Nk) bool mask; None when neither applies."""
    left, right = window if window is not None else (None, None)
    if is_causal:
        right = 0 if right is None else min(right, 0)
    if left is None and right is None:
        return None
    return window_keep_mask(n_queries, n_keys, device, left=left, right=right)


def _alibi_bias(slopes: torch.Tensor, n_queries: int, n_keys: int, dtype: torch.dtype) -> torch.Tensor:
    """-slope * |i - j| in `dtype`, (1, Hq, Nq, Nk) or (B, Hq, Nq, Nk) from (Hq,) or (B, Hq) slopes."""
    positions = torch.arange(max(n_queries, n_keys), device=slopes.device, dtype=dtype)
    distance = (positions[:n_queries, None] - positions[None, :n_keys]).abs()
    per_batch = slopes.to(dtype).reshape(-1 if slopes.dim() == 2 else 1, slopes.size(-1), 1, 1)
    return -per_batch * distance


def _masked(scores: torch.Tensor, attn_mask: torch.Tensor | None, keep: torch.Tensor | None) -> torch.Tensor:
    """Scores (or a bias) with -inf outside `keep` and the bool mask, plus a float mask."""
    if keep is not None:
        scores = scores.masked_fill(~keep, float("-inf"))
    if attn_mask is None:
        return scores
    if attn_mask.dtype == torch.bool:
        return scores.masked_fill(~attn_mask, float("-inf"))
    return scores + attn_mask


def _sdpa_mask(attn_mask, keep, bias) -> torch.Tensor | None:
    """One SDPA mask for the window (and causality), the ALiBi bias and `attn_mask`; bool when it can be."""
    if bias is not None:
        return _masked(bias, attn_mask, keep)
    if keep is None or attn_mask is None:
        return attn_mask if keep is None else keep
    return attn_mask & keep if attn_mask.dtype == torch.bool else attn_mask.masked_fill(~keep, float("-inf"))


def _softmax_with_sinks(scores: torch.Tensor, sinks: torch.Tensor | None) -> torch.Tensor:
    """softmax over the last dim whose denominator gains exp(sink) per head (dim -3); rows with nothing
    to attend (all -inf, no sink) get zero weights with finite gradients."""
    if scores.size(-1) == 0:
        return scores
    shift = scores.detach().amax(dim=-1, keepdim=True)  # any per-row shift gives the same softmax
    sink = None
    if sinks is not None:
        sink = sinks.to(scores.dtype)[:, None, None]
        shift = torch.maximum(shift, sink.detach())
    shift = shift.masked_fill(shift == float("-inf"), 0.0)
    weights = torch.exp(scores - shift)
    denominator = weights.sum(dim=-1, keepdim=True)
    if sink is not None:
        denominator = denominator + torch.exp(sink - shift)
    return weights / torch.where(denominator > 0, denominator, 1.0)


def _explicit_attention(query, key, value, attn_mask, dropout_p, scale, keep, softcap, alibi_slopes, sinks):
    """The scores materialised in float32 (float64 for float64 inputs); rank-4, grouped heads allowed."""
    compute_dtype = torch.float64 if query.dtype == torch.float64 else torch.float32
    batch, heads_q, n_queries, head_dim = query.shape
    heads_kv, n_keys = key.size(1), key.size(2)
    group = heads_q // heads_kv if heads_kv else 1
    # The query heads sharing one key/value head become one taller block of query rows.
    grouped_query = query.to(compute_dtype).reshape(batch, heads_kv, group * n_queries, head_dim)
    scores = (grouped_query @ key.to(compute_dtype).transpose(-2, -1)) * scale
    scores = scores.view(batch, heads_q, n_queries, n_keys)
    if softcap is not None:
        scores = softcap * torch.tanh(scores / softcap)
    if alibi_slopes is not None:
        scores = scores + _alibi_bias(alibi_slopes, n_queries, n_keys, compute_dtype)
    weights = _softmax_with_sinks(_masked(scores, attn_mask, keep), sinks)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    grouped_weights = weights.reshape(batch, heads_kv, group * n_queries, n_keys)
    out = grouped_weights @ value.to(compute_dtype)
    return out.view(batch, heads_q, n_queries, value.size(-1)).to(query.dtype)


def torch_attention_with_variants(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
    *,
    window: tuple[int | None, int | None] | None = None,
    softcap: float | None = None,
    alibi_slopes: torch.Tensor | None = None,
    sinks: torch.Tensor | None = None,
) -> torch.Tensor:
    """`reference.scaled_dot_product_attention`'s signature and result, on rank-4 checked inputs."""
    scale = reference.default_scale(query.size(-1)) if scale is None else float(scale)
    n_queries, n_keys = query.size(2), key.size(2)
    keep = _keep_mask(n_queries, n_keys, query.device, window, is_causal)
    sdpa_bias_is_exact = alibi_slopes is None or query.dtype in _BIAS_EXACT_DTYPES
    if softcap is None and sinks is None and sdpa_bias_is_exact:
        bias = None if alibi_slopes is None else _alibi_bias(alibi_slopes, n_queries, n_keys, query.dtype)
        return F.scaled_dot_product_attention(
            query, key, value, attn_mask=_sdpa_mask(attn_mask, keep, bias), dropout_p=dropout_p, scale=scale,
            enable_gqa=enable_gqa)
    return _explicit_attention(query, key, value, attn_mask, dropout_p, scale, keep, softcap, alibi_slopes, sinks)
