"""The functional API of the sinusoidal positional encoding: validate, pick a backend, run it.

`add_positional_encoding` adds pe[position] to x (B, N, d_model); `sinusoidal_embedding` looks
token ids up in an embedding table, scales by sqrt(d_model) and adds the encoding. Both take the
position as an offset (decode step t) or as (B, N) `position_ids` (left-padded batches), and fuse
dropout. The "triton" backend computes sin/cos in the kernel, in one read and one write; "torch"
and "reference" are the same math in PyTorch (see kernels/positional_torch.py).
"""
import math

import torch

from kernels import positional_torch
from kernels.backends import note_backend_ran, resolve_backend
from kernels.ops.positional_encoding import Dropout, Positions, launch_positional_encoding
from kernels.positional_validation import check_embedding_inputs, check_encoding_inputs, check_triton_limits


def _draw_dropout(p: float) -> Dropout:
    """The Philox seed comes from torch's default (CPU) generator: `torch.manual_seed` reproduces the
    mask, and drawing it costs no device sync."""
    if p == 0.0:
        return Dropout()
    return Dropout(p, int(torch.randint(0, 2**31 - 1, ()).item()))


def _scaled_dropout(grad: torch.Tensor, scale: float, dropout: Dropout) -> torch.Tensor:
    """dropout(grad * scale) with the forward's mask: the gradient of both ops (no encoding term)."""
    if dropout.p == 0.0 and scale == 1.0:
        return grad
    return launch_positional_encoding(grad, torch.empty_like(grad), Positions(), scale, dropout, add_encoding=False)


class _PositionalEncoding(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, positions: Positions, scale: float, dropout: Dropout, inplace: bool):
        out = launch_positional_encoding(x, x if inplace else torch.empty_like(x), positions, scale, dropout)
        if inplace:
            ctx.mark_dirty(x)
        ctx.scale, ctx.dropout = scale, dropout
        return out

    @staticmethod
    def backward(ctx, grad_out):
        return _scaled_dropout(grad_out, ctx.scale, ctx.dropout), None, None, None, None


class _SinusoidalEmbedding(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight, token_ids, positions: Positions, scale: float, dropout: Dropout, padding_idx):
        out = weight.new_empty(*token_ids.shape, weight.size(1))
        launch_positional_encoding(weight, out, positions, scale, dropout, token_ids=token_ids)
        ctx.save_for_backward(token_ids)
        ctx.vocab_size, ctx.scale, ctx.dropout, ctx.padding_idx = weight.size(0), scale, dropout, padding_idx
        return out

    @staticmethod
    def backward(ctx, grad_out):
        """Scatter-add dropout(dy * scale) into the rows the ids picked, accumulating in float32.

        The scaling and the mask are the forward kernel again (no encoding term); the scatter is
        torch's index_add_ (atomic adds on CUDA). A fused Triton scatter would save one write and
        read of the (B, N, d) rows, while the (vocab, d) float32 zero-fill and cast cost the same
        either way: not worth a second kernel yet."""
        (token_ids,) = ctx.saved_tensors
        rows = _scaled_dropout(grad_out, ctx.scale, ctx.dropout)  # (B, N, d)
        d_model = rows.size(-1)
        grad_weight = torch.zeros(ctx.vocab_size, d_model, dtype=torch.float32, device=rows.device)
        grad_weight.index_add_(0, token_ids.reshape(-1), rows.reshape(-1, d_model).float())
        if ctx.padding_idx is not None:
            grad_weight[ctx.padding_idx] = 0.0
        return grad_weight.to(grad_out.dtype), None, None, None, None, None


def _position_tensor(position_offset: int, position_ids, batch: int, seq_len: int, device) -> torch.Tensor:
    """(B, N) integer positions for the PyTorch backends."""
    if position_ids is not None:
        return position_ids.expand(batch, seq_len)
    return torch.arange(position_offset, position_offset + seq_len, device=device).expand(batch, seq_len)


def _kernel_positions(position_offset: int, position_ids, batch: int, seq_len: int) -> Positions:
    """(1, N) position_ids broadcast as a stride-0 view, never copied."""
    if position_ids is None:
        return Positions(offset=position_offset)
    return Positions(ids=position_ids.expand(batch, seq_len))


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
    With `inplace=True` x itself is overwritten and returned. The gradient is dropout(dy * scale)
    with the forward's mask. The result has x's dtype; the sum is computed in float32.
    """
    check_encoding_inputs(x, position_offset, position_ids, scale, dropout_p, inplace)
    batch, seq_len, _ = x.shape
    chosen = resolve_backend(backend, x.device)
    if chosen == "triton":
        check_triton_limits(x.dtype, position_offset, seq_len)
        positions = _kernel_positions(position_offset, position_ids, batch, seq_len)
        out = _PositionalEncoding.apply(x, positions, float(scale), _draw_dropout(dropout_p), inplace)
    else:
        positions = _position_tensor(position_offset, position_ids, batch, seq_len, x.device)
        out = positional_torch.add_positional_encoding(x, positions, scale, dropout_p, inplace, chosen)
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
        check_triton_limits(weight.dtype, position_offset, seq_len)
        positions = _kernel_positions(position_offset, position_ids, batch, seq_len)
        out = _SinusoidalEmbedding.apply(weight, token_ids, positions, scale, _draw_dropout(dropout_p), padding_idx)
    else:
        positions = _position_tensor(position_offset, position_ids, batch, seq_len, weight.device)
        out = positional_torch.sinusoidal_embedding(
            token_ids, weight, positions, scale, dropout_p, padding_idx, chosen)
    note_backend_ran(chosen)
    return out
