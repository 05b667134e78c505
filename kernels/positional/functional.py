"""The functional API of the sinusoidal positional encoding: validate, pick a backend, run it.

`add_positional_encoding` adds pe[position] to x (B, N, d_model); `sinusoidal_embedding` looks
token ids up in an embedding table, scales by sqrt(d_model) and adds the encoding. Both take the
position as an offset (decode step t) or as (B, N) `position_ids` (left-padded batches), and fuse
dropout. The "triton" backend computes sin/cos in the kernel, in one read and one write; "torch"
and "reference" are the same math in PyTorch (see kernels/positional/torch_fallback.py).
"""
import math

import torch

from kernels.positional import torch_fallback
from kernels.shared.backends import note_backend_ran, resolve_backend
from kernels.shared.custom_ops import POSITIONAL_SEED_HIGH, draw_seed
from kernels.shared.triton_availability import TRITON_AVAILABLE
from kernels.positional.validation import (
    check_embedding_inputs, check_encoding_inputs, check_encoding_kernel_limits,
)

if TRITON_AVAILABLE:  # without triton, resolve_backend never picks "triton" (see kernels/shared/triton_availability.py)
    from kernels.positional import custom_ops


def _draw_seed(dropout_p: float) -> torch.Tensor | None:
    """The dropout seed, drawn outside the custom op (see kernels/shared/custom_ops.py); None without dropout."""
    return draw_seed(POSITIONAL_SEED_HIGH) if dropout_p > 0.0 else None


def _position_tensor(position_offset: int, position_ids, batch: int, seq_len: int, device) -> torch.Tensor:
    """(B, N) integer positions for the PyTorch backends."""
    if position_ids is not None:
        return position_ids.expand(batch, seq_len)
    return torch.arange(position_offset, position_offset + seq_len, device=device).expand(batch, seq_len)


def _kernel_position_ids(position_ids, batch: int, seq_len: int) -> torch.Tensor | None:
    """(1, N) position_ids broadcast as a stride-0 view, never copied."""
    return None if position_ids is None else position_ids.expand(batch, seq_len)


def add_positional_encoding(
    x: torch.Tensor,
    *,
    position_offset: int = 0,
    position_ids: torch.Tensor | None = None,
    scale: float = 1.0,
    dropout_p: float = 0.0,
    inplace: bool = False,
    backend: str | None = None,
) -> torch.Tensor:
    """dropout(x * scale + pe[position]) for x (B, N, d_model), any strides, fp16/bf16/fp32.

    position = position_offset + n, or position_ids[b, n] when given ((B, N) or (1, N) integers).
    `scale=math.sqrt(d_model)` gives the Transformer's embedding scaling. Dropout keeps an element
    with probability 1 - dropout_p and scales it by 1 / (1 - dropout_p); pass 0.0 outside training.
    With `inplace=True` x itself is overwritten and returned (on the triton backend through one
    temporary: the custom op is out-of-place, so autograd and torch.compile see a pure op). The
    gradient is dropout(dy * scale) with the forward's mask. The result has x's dtype; the sum is
    computed in float32.
    """
    check_encoding_inputs(x, position_offset, position_ids, scale, dropout_p, inplace)
    batch, seq_len, _ = x.shape
    chosen = resolve_backend(backend, x.device)
    if chosen == "triton":
        check_encoding_kernel_limits(x.dtype, position_offset, seq_len)
        ids = _kernel_position_ids(position_ids, batch, seq_len)
        out = custom_ops.positional_encoding(x, ids, position_offset, float(scale), float(dropout_p),
                                                 _draw_seed(dropout_p))
        if inplace:  # custom ops may not mutate what autograd differentiates: write back (one temporary)
            out = x.copy_(out)
    else:
        positions = _position_tensor(position_offset, position_ids, batch, seq_len, x.device)
        out = torch_fallback.add_positional_encoding(x, positions, scale, dropout_p, inplace, chosen)
    note_backend_ran(chosen)
    return out


def sinusoidal_embedding(
    token_ids: torch.Tensor,
    weight: torch.Tensor,
    *,
    position_offset: int = 0,
    position_ids: torch.Tensor | None = None,
    scale: float | None = None,
    padding_idx: int | None = None,
    dropout_p: float = 0.0,
    backend: str | None = None,
) -> torch.Tensor:
    """dropout(weight[token_ids] * scale + pe[position]): token ids (B, N) -> (B, N, d_model).

    `scale` defaults to sqrt(d_model). Positions and dropout as in `add_positional_encoding`. The
    gradient flows to `weight` only, and never into row `padding_idx` (as `nn.Embedding`). Ids must
    lie in [0, vocab_size): checked on CPU tensors; on CUDA (where a check would sync) the Triton
    kernel writes NaN rows for out-of-range ids instead of reading out of bounds.
    """
    check_embedding_inputs(token_ids, weight, position_offset, position_ids, scale, dropout_p, padding_idx)
    scale = math.sqrt(weight.size(1)) if scale is None else float(scale)
    batch, seq_len = token_ids.shape
    chosen = resolve_backend(backend, weight.device)
    if chosen == "triton":
        check_encoding_kernel_limits(weight.dtype, position_offset, seq_len)
        ids = _kernel_position_ids(position_ids, batch, seq_len)
        out = custom_ops.sinusoidal_embedding(weight, token_ids, ids, position_offset, scale, float(dropout_p),
                                                  _draw_seed(dropout_p), padding_idx)
    else:
        positions = _position_tensor(position_offset, position_ids, batch, seq_len, weight.device)
        out = torch_fallback.sinusoidal_embedding(
            token_ids, weight, positions, scale, dropout_p, padding_idx, chosen)
    note_backend_ran(chosen)
    return out
