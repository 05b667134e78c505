"""Attention over packed variable-length sequences, written as one block-diagonal mask.

The sequences lie one after another along the first dim of q (total_q, Hq, D) and of k/v
(total_k, Hkv, D|Dv); sequence b owns rows cu_seqlens_q[b]:cu_seqlens_q[b + 1] of q and
cu_seqlens_k[b]:cu_seqlens_k[b + 1] of k and v (FlashAttention's varlen layout). Each query attends
to the keys of its own sequence only, causally (top-left, as torch SDPA) when asked. The mask is
(total_q, total_k): exact and differentiable in any dtype, meant for checking, not for speed.
"""
import torch

from reference.attention import scaled_dot_product_attention


def _sequence_and_position(cu_seqlens: torch.Tensor, total: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each of the `total` packed rows: the index of its sequence and its position within it."""
    rows = torch.arange(total, device=cu_seqlens.device)
    starts = cu_seqlens.long()
    sequence = torch.searchsorted(starts[1:], rows, right=True)  # the b with starts[b] <= row < starts[b + 1]
    return sequence, rows - starts[sequence]


def block_diagonal_keep(cu_seqlens_q: torch.Tensor, cu_seqlens_k: torch.Tensor, total_q: int, total_k: int,
                        is_causal: bool = False, window: tuple[int | None, int | None] | None = None) -> torch.Tensor:
    """(total_q, total_k) bool, True where the query row may attend the key row: same sequence, for
    `is_causal` a key position at most the query's position within that sequence, and for
    `window=(left, right)` a key position i - left <= j <= i + right (None: unbounded side)."""
    sequence_q, position_q = _sequence_and_position(cu_seqlens_q, total_q)
    sequence_k, position_k = _sequence_and_position(cu_seqlens_k, total_k)
    keep = sequence_q[:, None] == sequence_k[None, :]
    offset = position_k[None, :] - position_q[:, None]  # key position minus query position
    if is_causal:
        keep &= offset <= 0
    left, right = window if window is not None else (None, None)
    if left is not None:
        keep &= offset >= -left
    if right is not None:
        keep &= offset <= right
    return keep


def _packed_alibi_bias(alibi_slopes: torch.Tensor, cu_seqlens_q: torch.Tensor, cu_seqlens_k: torch.Tensor,
                       total_q: int, total_k: int, dtype: torch.dtype) -> torch.Tensor:
    """(Hq, total_q, total_k): -slope * |i - j| with i, j the positions within each row's sequence;
    (Hq,) slopes are shared, (B, Hq) slopes are per sequence (the query row's)."""
    sequence_q, position_q = _sequence_and_position(cu_seqlens_q, total_q)
    _, position_k = _sequence_and_position(cu_seqlens_k, total_k)
    distance = (position_q[:, None] - position_k[None, :]).abs().to(dtype)  # (total_q, total_k)
    slopes = alibi_slopes.to(dtype)
    slopes = slopes[:, None] if slopes.dim() == 1 else slopes[sequence_q].transpose(0, 1)  # (Hq, 1 | total_q)
    return -slopes[..., None] * distance


def varlen_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_k: torch.Tensor,
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
    """softmax(q @ k^T * scale + block-diagonal mask) @ v over packed sequences -> (total_q, Hq, Dv).
    A query whose sequence has no key (or, causally, no key at or before it) returns zeros.

    The variants of `scaled_dot_product_attention`, per sequence: the window and ALiBi's distance use
    positions within each sequence; `alibi_slopes` (Hq,) or (B, Hq), one row per sequence; `sinks` (Hq,)."""
    total_q, total_k = q.size(0), k.size(0)
    mask = block_diagonal_keep(cu_seqlens_q, cu_seqlens_k, total_q, total_k, is_causal, window)
    if alibi_slopes is not None:  # one float mask: the bias where kept, -inf elsewhere
        bias = _packed_alibi_bias(alibi_slopes, cu_seqlens_q, cu_seqlens_k, total_q, total_k,
                                  torch.promote_types(q.dtype, alibi_slopes.dtype))
        mask = bias.masked_fill(~mask, float("-inf"))
    out = scaled_dot_product_attention(q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1), attn_mask=mask,
                                       dropout_p=dropout_p, scale=scale, enable_gqa=enable_gqa, softcap=softcap,
                                       sinks=sinks)  # (Hq, total_q, Dv)
    return out.transpose(0, 1)
