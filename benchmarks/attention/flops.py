"""The attention FLOP counts that turn times into TFLOP/s (docs/design.md, "Performance method")."""


def attention_forward_flops(
    batch: int, heads: int, q_len: int, kv_len: int, head_dim: int, causal: bool, window: int | None = None,
    documents: tuple[int, ...] | None = None,
) -> int:
    """FLOPs of the attention forward: two matmuls (QK^T and PV) of 2*Nq*Nk*D each, per head.

    Causal with Nq == Nk halves it (only the lower triangle is work). Causal with Nq != Nk keeps the full
    count, and padded keys are counted too: the rate is then a lower bound, never an inflated one.
    A causal sliding `window` (each query sees itself and the window - 1 keys before it, Nq == Nk) counts
    the pairs in its band: a kernel that skips the tiles outside it does work that scales with the band.
    Packed `documents` (their lengths, causal within each) count the pairs within them, however the
    inputs hold them (packed, or padded one a row, the padding's work uncounted): the rate is per
    attended score.
    """
    if documents is not None:
        return 4 * batch * heads * sum(length * (length + 1) // 2 for length in documents) * head_dim
    if causal and window is not None and q_len == kv_len:
        width = min(window, q_len)
        pairs = width * (width + 1) // 2 + (q_len - width) * width  # rows shorter than the window, then full
        return 4 * batch * heads * pairs * head_dim
    flops = 4 * batch * heads * q_len * kv_len * head_dim
    if causal and q_len == kv_len:
        return flops // 2
    return flops


def attention_backward_flops(
    batch: int, heads: int, q_len: int, kv_len: int, head_dim: int, causal: bool, window: int | None = None,
    documents: tuple[int, ...] | None = None,
) -> int:
    """FLOPs of the attention backward: 2.5x the forward's (docs/design.md), the convention of FlashAttention.

    Five matmuls of 2*Nq*Nk*D to the forward's two: QK^T recomputed, dP = dO V^T, dV = P^T dO,
    dQ = dS K, dK = dS^T Q. Same causal halving, window band, documents and lower-bound rule as the forward.
    """
    return attention_forward_flops(batch, heads, q_len, kv_len, head_dim, causal, window, documents) * 5 // 2

