"""torch.nn.MultiheadAttention's masks turned into the one mask `kernels.attention` takes.

There a bool mask is True where a pair is masked OUT and a float mask is added to the scores;
`kernels.attention` keeps SDPA's convention (bool True = attend). The result broadcasts to
(B, H, L, S) and is only as big as its inputs need: a key padding mask alone stays (B, 1, 1, S)
(the kernel skips key tiles that are padding in every row), a 2-D attn_mask alone stays (L, S);
both together cost one (B, 1, L, S) tensor, (B, H, L, S) only when attn_mask is per head (3-D).
"""
import torch
import torch.nn.functional as F

from kernels.sdpa.masks import causal_keep_mask


def _check_mask_dtype(name: str, mask: torch.Tensor) -> None:
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise TypeError(f"{name} must be bool (True = masked out) or floating point (added), got dtype {mask.dtype}")


def padding_mask_as_4d(key_padding_mask: torch.Tensor, batch: int, n_keys: int) -> torch.Tensor:
    """(B, S) -> (B, 1, 1, S), a view."""
    _check_mask_dtype("key_padding_mask", key_padding_mask)
    if key_padding_mask.shape != (batch, n_keys):
        raise ValueError(
            f"key_padding_mask must have shape (batch={batch}, key_len={n_keys}), got {tuple(key_padding_mask.shape)}"
        )
    return key_padding_mask.view(batch, 1, 1, n_keys)


def attn_mask_as_4d(attn_mask: torch.Tensor, batch: int, heads: int, n_queries: int, n_keys: int) -> torch.Tensor:
    """(L, S) stays as is (it broadcasts); (B * num_heads, L, S) -> (B, H, L, S), a view."""
    _check_mask_dtype("attn_mask", attn_mask)
    if attn_mask.shape == (n_queries, n_keys):
        return attn_mask
    if attn_mask.shape == (batch * heads, n_queries, n_keys):
        return attn_mask.view(batch, heads, n_queries, n_keys)
    raise ValueError(
        f"attn_mask must have shape (query_len={n_queries}, key_len={n_keys}) or "
        f"(batch * num_heads={batch * heads}, {n_queries}, {n_keys}), got {tuple(attn_mask.shape)}"
    )


def pad_extra_keys(mask: torch.Tensor | None, n_extra: int) -> torch.Tensor | None:
    """Leave the keys appended by add_bias_kv / add_zero_attn visible, as torch does."""
    if mask is None or n_extra == 0:
        return mask
    return F.pad(mask, (0, n_extra))  # False / 0.0: not masked


def causal_masked_out(n_queries: int, n_keys: int, device: torch.device) -> torch.Tensor:
    """(L, S) bool, True above the diagonal: torch's causal mask, top-left aligned."""
    return ~causal_keep_mask(n_queries, n_keys, device)


def _as_additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if mask.dtype != torch.bool:
        return mask.to(dtype)
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))


def combine_masks(masks: list[torch.Tensor], dtype: torch.dtype) -> torch.Tensor | None:
    """torch-convention masks (each broadcastable to (B, H, L, S)) -> one kernel-convention mask.

    All bool: True = attend, keep only where no mask masks out. Any float: every mask becomes
    additive in `dtype` (bool True -> -inf) and they are summed, as torch's module merges them.
    """
    if not masks:
        return None
    if all(mask.dtype == torch.bool for mask in masks):
        keep = ~masks[0]
        for mask in masks[1:]:
            keep = keep & ~mask
        return keep
    additive = _as_additive(masks[0], dtype)
    for mask in masks[1:]:
        additive = additive + _as_additive(mask, dtype)
    return additive
