"""Input checks for the attention API: bad input gets an error naming the argument, never a
Triton crash or a silently wrong answer."""
import torch

from kernels.shared.checks import KERNEL_DTYPES_WITH_FLOAT64, check_finite_float, check_kernel_dtype, check_probability

MAX_HEAD_DIM = 256


def _check_tensor(name: str, value) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dim() not in (3, 4):
        raise ValueError(
            f"{name} must have rank 4 (batch, heads, seq, head_dim) or rank 3 (batch, seq, head_dim), "
            f"got shape {tuple(value.shape)}"
        )
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")


def _check_mask(attn_mask, scores_shape: tuple[int, ...], query: torch.Tensor, is_causal: bool) -> None:
    if not isinstance(attn_mask, torch.Tensor):
        raise TypeError(f"attn_mask must be a torch.Tensor or None, got {type(attn_mask).__name__}")
    if is_causal:
        raise ValueError(
            "attn_mask and is_causal=True cannot be combined (as in torch SDPA): fold the causal part into attn_mask"
        )
    if attn_mask.dtype not in (torch.bool, torch.float32, query.dtype):
        raise TypeError(
            f"attn_mask must be bool (True = attend), or float32 or the query's dtype {query.dtype} "
            f"(added to the scores), as torch SDPA requires; got dtype {attn_mask.dtype}"
        )
    if attn_mask.device != query.device:
        raise ValueError(f"attn_mask is on {attn_mask.device} but query is on {query.device}")
    try:
        broadcast = torch.broadcast_shapes(attn_mask.shape, scores_shape)
    except RuntimeError:
        broadcast = None
    if broadcast != torch.Size(scores_shape):
        raise ValueError(
            f"attn_mask of shape {tuple(attn_mask.shape)} does not broadcast to the attention scores' "
            f"shape {scores_shape} (batch, heads, query_len, key_len)"
        )


def check_attention_inputs(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa) -> None:
    """Checks shared by every backend: what torch SDPA's semantics require of the arguments."""
    for name, tensor in (("query", query), ("key", key), ("value", value)):
        _check_tensor(name, tensor)
    if not query.dim() == key.dim() == value.dim():
        raise ValueError(
            f"query, key and value must have the same rank, got {query.dim()}, {key.dim()} and {value.dim()}"
        )
    if not query.dtype == key.dtype == value.dtype:
        raise TypeError(f"query, key and value must share one dtype, got {query.dtype}, {key.dtype} and {value.dtype}")
    if not query.device == key.device == value.device:
        raise ValueError(
            f"query, key and value must be on one device, got {query.device}, {key.device} and {value.device}"
        )

    if query.size(0) != key.size(0) or key.size(0) != value.size(0):
        raise ValueError(f"batch sizes differ: query {query.size(0)}, key {key.size(0)}, value {value.size(0)}")
    if key.shape[:-1] != value.shape[:-1]:
        raise ValueError(f"key {tuple(key.shape)} and value {tuple(value.shape)} must match in all but the last dim")
    if query.size(-1) != key.size(-1):
        raise ValueError(f"query head_dim {query.size(-1)} differs from key head_dim {key.size(-1)}")
    if query.dim() == 4:
        heads_q, heads_kv = query.size(1), key.size(1)
        if heads_q != heads_kv and not enable_gqa:
            raise ValueError(
                f"query has {heads_q} heads but key/value have {heads_kv}: "
                "pass enable_gqa=True for grouped-query attention"
            )
        if heads_kv == 0 and heads_q != 0:
            raise ValueError(f"key/value have 0 heads: no key/value head for the query's {heads_q} heads")
        if heads_kv != 0 and heads_q % heads_kv != 0:
            raise ValueError(
                f"enable_gqa needs query heads ({heads_q}) to be a multiple of key/value heads ({heads_kv})"
            )

    if not isinstance(is_causal, bool):
        raise TypeError(f"is_causal must be a bool, got {type(is_causal).__name__}")
    check_probability("dropout_p", dropout_p, one_allowed=True)  # 1: every weight dropped, zeros as in torch
    check_finite_float("scale", scale, optional=True)  # torch takes inf and nan too: ours refuses a NaN output
    if attn_mask is not None:
        scores_shape = (*query.shape[:-1], key.size(-2))
        if query.dim() == 4:
            scores_shape = (query.size(0), query.size(1), query.size(2), key.size(2))
        _check_mask(attn_mask, scores_shape, query, is_causal)


def check_key_padding(key_padding, query: torch.Tensor, key: torch.Tensor) -> None:
    """A (batch, key_len) bool key-padding mask, True = a real key, for rank-4 query/key."""
    if query.dim() != 4:
        raise ValueError(f"query, key and value must have rank 4 (batch, heads, seq, head_dim), got {query.dim()}")
    if not isinstance(key_padding, torch.Tensor) or key_padding.dtype != torch.bool:
        kind = key_padding.dtype if isinstance(key_padding, torch.Tensor) else type(key_padding).__name__
        raise TypeError(f"key_padding must be a bool tensor (batch, key_len), True = attend; got {kind}")
    expected = (key.size(0), key.size(2))
    if tuple(key_padding.shape) != expected:
        raise ValueError(f"key_padding must have shape (batch, key_len) = {expected}, got {tuple(key_padding.shape)}")
    if key_padding.device != query.device:
        raise ValueError(f"key_padding is on {key_padding.device} but query is on {query.device}")


def check_attention_kernel_limits(query, value) -> None:
    """What the Triton attention kernels support beyond the checks every backend makes."""
    check_kernel_dtype(query.dtype, KERNEL_DTYPES_WITH_FLOAT64, "query/key/value")
    for name, head_dim in (("query/key", query.size(-1)), ("value", value.size(-1))):
        if head_dim > MAX_HEAD_DIM:
            raise ValueError(f"{name} head_dim {head_dim} exceeds the triton backend's maximum of {MAX_HEAD_DIM}")
