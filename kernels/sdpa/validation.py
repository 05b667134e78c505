"""Input checks for the attention API: bad input gets an error naming the argument, never a
Triton crash or a silently wrong answer.

They run before every call, a decode step's included, so they are written for host time: each tensor's
shape, dtype and device is read once, shapes are compared as tuples (`torch.broadcast_shapes` alone
costs more than a whole small SDPA call), and every condition is one comparison on the accepting path.
Nothing is skipped: what the torch backend would also reject is refused here, in our words. Its common
call reaches these checks only when torch refuses it (kernels/sdpa/torch_backend.py): the error is
still ours.
"""
import math

import torch

from kernels.shared.checks import KERNEL_DTYPES_WITH_FLOAT64, check_finite_float, check_kernel_dtype, check_probability

MAX_HEAD_DIM = 256
_PLAIN_DTYPES = frozenset(KERNEL_DTYPES_WITH_FLOAT64)  # plain_call_device's dtypes; the others take the full checks


def _checked_shape(name: str, value) -> torch.Size:
    """The shape of a rank-3 or rank-4 floating-point tensor."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    shape = value.shape
    if len(shape) not in (3, 4):
        raise ValueError(
            f"{name} must have rank 4 (batch, heads, seq, head_dim) or rank 3 (batch, seq, head_dim), "
            f"got shape {tuple(shape)}"
        )
    if not value.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    return shape


def broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether `shape` broadcasts to exactly `target` (torch's rules: right-aligned, each dim 1 or equal)."""
    offset = len(target) - len(shape)
    if offset < 0:
        return False
    for index, size in enumerate(shape, offset):
        if size != 1 and size != target[index]:
            return False
    return True


def _check_mask(attn_mask, scores_shape: tuple[int, ...], dtype: torch.dtype, device: torch.device,
                is_causal: bool) -> None:
    if not isinstance(attn_mask, torch.Tensor):
        raise TypeError(f"attn_mask must be a torch.Tensor or None, got {type(attn_mask).__name__}")
    if is_causal:
        raise ValueError(
            "attn_mask and is_causal=True cannot be combined (as in torch SDPA): fold the causal part into attn_mask"
        )
    mask_dtype = attn_mask.dtype
    if mask_dtype is not torch.bool and mask_dtype is not torch.float32 and mask_dtype is not dtype:
        raise TypeError(
            f"attn_mask must be bool (True = attend), or float32 or the query's dtype {dtype} "
            f"(added to the scores), as torch SDPA requires; got dtype {mask_dtype}"
        )
    if attn_mask.device != device:
        raise ValueError(f"attn_mask is on {attn_mask.device} but query is on {device}")
    if not broadcasts_to(attn_mask.shape, scores_shape):
        raise ValueError(
            f"attn_mask of shape {tuple(attn_mask.shape)} does not broadcast to the attention scores' "
            f"shape {scores_shape} (batch, heads, query_len, key_len)"
        )


def _check_heads(heads_q: int, heads_kv: int, enable_gqa: bool) -> None:
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


def plain_scores_shape(query, key, value, enable_gqa) -> tuple[int, ...] | None:
    """The attention scores' shape when q, k and v have one rank, 3 or 4, one batch size, the key's
    head_dim equal to the query's, one key count for k and v, and equal head counts (or, under
    `enable_gqa`, key/value heads that divide the query's); None otherwise. Shapes only: dtypes and
    devices are the caller's. A non-tensor raises AttributeError, a rank other than 3 or 4 ValueError:
    the callers catch both. Each `.shape` read builds a new object: read once."""
    q_shape, k_shape, v_shape = query.shape, key.shape, value.shape
    if len(q_shape) == 4:
        batch, heads_q, n_queries, head_dim = q_shape
        k_batch, heads_kv, n_keys, k_head_dim = k_shape
        v_batch, v_heads, v_keys, _ = v_shape
        if not (heads_q == heads_kv == v_heads or (
                enable_gqa and heads_kv == v_heads and heads_kv != 0 and heads_q % heads_kv == 0)):
            return None
        scores_shape = (batch, heads_q, n_queries, n_keys)
    else:
        batch, n_queries, head_dim = q_shape
        k_batch, n_keys, k_head_dim = k_shape
        v_batch, v_keys, _ = v_shape
        scores_shape = (batch, n_queries, n_keys)
    return scores_shape if batch == k_batch == v_batch and n_keys == v_keys and head_dim == k_head_dim else None


def plain_call_device(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa) -> torch.device | None:
    """The device of a common call, accepted in a frame or two; None for any other call. The common
    call: q/k/v that `plain_scores_shape` accepts, of one float dtype the kernels run and one device, a
    bool is_causal, a float dropout_p in [0, 1], no scale or a finite float one, and no mask or a bool /
    float32 / query-dtype mask on the same device that broadcasts to the scores (without is_causal).
    None sends the call to the full checks and their per-argument errors; a device is never returned
    where they refuse (tests/sdpa/test_attention_validation.py). No isinstance test: only torch tensors
    carry a torch.dtype among the accepted ones. A `.device` read builds a new object: the caller
    reuses the one returned."""
    try:
        scores_shape = plain_scores_shape(query, key, value, enable_gqa)
        dtype = query.dtype
        device = query.device
        if not (scores_shape is not None and dtype in _PLAIN_DTYPES and key.dtype is dtype and value.dtype is dtype
                and (is_causal is False or is_causal is True)
                and type(dropout_p) is float and 0.0 <= dropout_p <= 1.0
                and (scale is None or (type(scale) is float and math.isfinite(scale)))
                and key.device == device and value.device == device):
            return None
        if attn_mask is None:
            return device
        mask_dtype, mask_shape = attn_mask.dtype, attn_mask.shape
        if not (is_causal is False and (mask_dtype is torch.bool or mask_dtype is dtype or mask_dtype is torch.float32)
                and attn_mask.device == device):
            return None
        if len(mask_shape) == 4 and len(scores_shape) == 4:  # the common mask, compared without a call
            size_0, size_1, size_2, size_3 = mask_shape
            batch, heads_q, n_queries, n_keys = scores_shape
            broadcasts = ((size_0 == 1 or size_0 == batch) and (size_1 == 1 or size_1 == heads_q)
                          and (size_2 == 1 or size_2 == n_queries) and (size_3 == 1 or size_3 == n_keys))
        else:
            broadcasts = broadcasts_to(mask_shape, scores_shape)
        return device if broadcasts else None
    except (AttributeError, ValueError):  # not tensors, or another rank: the full checks name the argument
        return None


def _check_tensors(query, key, value, enable_gqa) -> tuple[int, ...]:
    """Every check of q/k/v on their own, each with its message; the attention scores' shape."""
    q_shape, k_shape, v_shape = _checked_shape("query", query), _checked_shape("key", key), _checked_shape("value", value)
    rank = len(q_shape)
    if not rank == len(k_shape) == len(v_shape):
        raise ValueError(f"query, key and value must have the same rank, got {rank}, {len(k_shape)} and {len(v_shape)}")
    dtype = query.dtype
    if key.dtype is not dtype or value.dtype is not dtype:
        raise TypeError(f"query, key and value must share one dtype, got {dtype}, {key.dtype} and {value.dtype}")
    device = query.device
    if key.device != device or value.device != device:
        raise ValueError(
            f"query, key and value must be on one device, got {device}, {key.device} and {value.device}"
        )

    if q_shape[0] != k_shape[0] or k_shape[0] != v_shape[0]:
        raise ValueError(f"batch sizes differ: query {q_shape[0]}, key {k_shape[0]}, value {v_shape[0]}")
    if k_shape[-2] != v_shape[-2] or (rank == 4 and k_shape[1] != v_shape[1]):  # (torch.Size slices are slow)
        raise ValueError(f"key {tuple(k_shape)} and value {tuple(v_shape)} must match in all but the last dim")
    if q_shape[-1] != k_shape[-1]:
        raise ValueError(f"query head_dim {q_shape[-1]} differs from key head_dim {k_shape[-1]}")
    if rank == 4 and q_shape[1] != k_shape[1]:  # equal head counts need no GQA
        _check_heads(q_shape[1], k_shape[1], enable_gqa)
    return (q_shape[0], q_shape[1], q_shape[2], k_shape[2]) if rank == 4 else (q_shape[0], q_shape[1], k_shape[1])


def check_attention_inputs(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa) -> None:
    """Checks shared by every backend: what torch SDPA's semantics require of the arguments. The
    common call passes `plain_call_device` alone; any other goes through every check."""
    if plain_call_device(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa) is None:
        check_every_attention_input(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)


def check_every_attention_input(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa) -> None:
    """Each argument on its own, with its own error (check_attention_inputs without its fast path)."""
    scores_shape = _check_tensors(query, key, value, enable_gqa)
    if is_causal is not True and is_causal is not False:
        raise TypeError(f"is_causal must be a bool, got {type(is_causal).__name__}")
    if type(dropout_p) is not float or not 0.0 <= dropout_p <= 1.0:
        check_probability("dropout_p", dropout_p, one_allowed=True)  # 1: every weight dropped, zeros as in torch
    if scale is not None:
        check_finite_float("scale", scale, optional=True)  # torch takes inf and nan: ours refuses a NaN output
    if attn_mask is not None:
        _check_mask(attn_mask, scores_shape, query.dtype, query.device, is_causal)


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
    head_dim, value_head_dim = query.shape[-1], value.shape[-1]
    if head_dim > MAX_HEAD_DIM or value_head_dim > MAX_HEAD_DIM:
        name, size = ("query/key", head_dim) if head_dim > MAX_HEAD_DIM else ("value", value_head_dim)
        raise ValueError(f"{name} head_dim {size} exceeds the triton backend's maximum of {MAX_HEAD_DIM}")
