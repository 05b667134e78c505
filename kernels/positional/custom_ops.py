"""The fused positional encoding as torch.library custom ops (see kernels/shared/custom_ops.py for why):

- `triton_attention_kernels::positional_encoding`: dropout(x * scale + pe[positions]), out-of-place;
- `::sinusoidal_embedding`: the same with the source rows gathered from a table by token ids;
- `::scaled_dropout`: dropout(grad * scale) with a given seed, the backward of both.

Positions are `position_ids` (B, N) (any strides, a stride-0 broadcast included) or, when None,
`position_offset + n`. Outputs: `empty_like(x)` for the encoding (x's layout; contiguous if x is a
broadcast view) and a contiguous (B, N, d) tensor for the embedding; the fakes allocate the same.
The embedding's `padding_idx` is an op argument only for its backward, as in `aten::embedding`.
"""
import torch
from torch import Tensor

from kernels.shared.custom_ops import NAMESPACE, dropout_of
from kernels.positional.triton.encoding import Positions, launch_positional_encoding


def _positions(position_ids: Tensor | None, position_offset: int) -> Positions:
    return Positions(offset=position_offset) if position_ids is None else Positions(ids=position_ids)


def _empty_rows(weight: Tensor, token_ids: Tensor) -> Tensor:
    return weight.new_empty(*token_ids.shape, weight.size(1))  # (B, N, d)


@torch.library.custom_op(f"{NAMESPACE}::positional_encoding", mutates_args=())
def positional_encoding(
    x: Tensor, position_ids: Tensor | None, position_offset: int, scale: float, dropout_p: float, seed: Tensor | None,
) -> Tensor:
    return launch_positional_encoding(x, torch.empty_like(x), _positions(position_ids, position_offset), scale,
                                      dropout_of(dropout_p, seed))


@positional_encoding.register_fake
def _(x, position_ids, position_offset, scale, dropout_p, seed):
    return torch.empty_like(x)


@torch.library.custom_op(f"{NAMESPACE}::sinusoidal_embedding", mutates_args=())
def sinusoidal_embedding(
    weight: Tensor, token_ids: Tensor, position_ids: Tensor | None, position_offset: int, scale: float,
    dropout_p: float, seed: Tensor | None, padding_idx: int | None,
) -> Tensor:
    return launch_positional_encoding(weight, _empty_rows(weight, token_ids), _positions(position_ids, position_offset),
                                      scale, dropout_of(dropout_p, seed), token_ids=token_ids)


@sinusoidal_embedding.register_fake
def _(weight, token_ids, position_ids, position_offset, scale, dropout_p, seed, padding_idx):
    return _empty_rows(weight, token_ids)


@torch.library.custom_op(f"{NAMESPACE}::scaled_dropout", mutates_args=())
def scaled_dropout(grad: Tensor, scale: float, dropout_p: float, seed: Tensor | None) -> Tensor:
    """dropout(grad * scale) with the forward's mask: the encoding kernel without its encoding term."""
    return launch_positional_encoding(grad, torch.empty_like(grad), Positions(), scale, dropout_of(dropout_p, seed),
                                      add_encoding=False)


@scaled_dropout.register_fake
def _(grad, scale, dropout_p, seed):
    return torch.empty_like(grad)


def _scaled_dropout_grad(grad: Tensor, ctx) -> Tensor:
    """The gradient of both forwards w.r.t. their source rows; no kernel when it is the identity."""
    if ctx.dropout_p == 0.0 and ctx.scale == 1.0:
        return grad
    (seed,) = ctx.saved_tensors[-1:]
    return scaled_dropout(grad, ctx.scale, ctx.dropout_p, seed)


def _encoding_setup_context(ctx, inputs, output):
    _, _, _, ctx.scale, ctx.dropout_p, seed = inputs
    ctx.save_for_backward(seed)


def _encoding_backward(ctx, grad_out):
    return _scaled_dropout_grad(grad_out, ctx), None, None, None, None, None


def _embedding_setup_context(ctx, inputs, output):
    weight, token_ids, _, _, ctx.scale, ctx.dropout_p, seed, ctx.padding_idx = inputs
    ctx.vocab_size = weight.size(0)
    ctx.save_for_backward(token_ids, seed)


def _embedding_backward(ctx, grad_out):
    """Scatter-add dropout(dy * scale) into the rows the ids picked, accumulating in float32.

    The scatter is torch's index_add_ (atomic adds on CUDA). A fused Triton scatter would save one
    write and read of the (B, N, d) rows, while the (vocab, d) float32 zero-fill and cast cost the
    same either way: not worth a second kernel yet."""
    token_ids = ctx.saved_tensors[0]
    rows = _scaled_dropout_grad(grad_out, ctx)  # (B, N, d)
    d_model = rows.size(-1)
    grad_weight = rows.new_zeros(ctx.vocab_size, d_model, dtype=torch.float32)
    grad_weight.index_add_(0, token_ids.reshape(-1), rows.reshape(-1, d_model).float())
    if ctx.padding_idx is not None:
        grad_weight[ctx.padding_idx] = 0.0
    return grad_weight.to(grad_out.dtype), None, None, None, None, None, None, None


positional_encoding.register_autograd(_encoding_backward, setup_context=_encoding_setup_context)
sinusoidal_embedding.register_autograd(_embedding_backward, setup_context=_embedding_setup_context)
