"""The fused attention as torch.library custom ops: `triton_attention_kernels::attention_forward` and
`::attention_backward`, with fake implementations and the autograd formula linking them.

Why custom ops: torch.compile cannot look inside a Triton launcher that reads Python dataclasses and
picks configs at run time; a custom op is one opaque graph node whose fake implementation tells the
compiler the output's shape, dtype and strides. Inputs may have any strides, broadcast (stride 0)
masks included: the real implementation hands them to the kernels as they are, never copied.

Fake outputs mirror the real ones exactly (`opcheck` verifies it):
- out (B, Hq, Nq, Dv) is a transposed view of a (B, Nq, Hq, Dv) buffer, so merging heads is free;
- lse (B, Hq, Nq), contiguous, fp32 (fp64 for fp64 inputs), or an empty (0,) tensor when
  `return_lse` is False (inference: the kernel then skips storing it);
- dq, dk, dv are `empty_like` q, k, v; dsinks is `empty_like` the sinks, or an empty (0,) tensor;
  dmask is a contiguous (B, Hq, Nq, Nk) tensor of the mask's dtype when `mask_grad`, else empty (0,).

The attention variants (kernels/sdpa/variants.py) travel as five optional trailing arguments: the
window's two sides, the soft cap, the ALiBi slopes and the sinks. Sinks get a gradient; slopes do
not (the backward refuses, naming them).

A float mask (a trainable bias: T5's relative position bias, a learned ALiBi) gets its gradient,
dBias = dS = P (dP - delta), the gradient of the scores the softmax takes (after the scale and the
soft cap, so no scale and no cap derivative; through the dropout mask; zero where the bias is -inf
or a key is never attended). The op receives the mask as the (B, Hq, Nq, Nk) stride-0 view that
kernels.attention makes of the user's tensor with `expand`, and returns the gradient of that view:
the dQ kernel, which already computes dS for every (query tile, key tile) pair of its query block,
stores it densely (MASK_GRAD; no atomics, so deterministic), and autograd's backward of the `expand`
sums it over the broadcast dims (batch, heads, queries) down to the user's shape. Why not reduce in
the kernel: the broadcast dims' elements are computed by different programs, and an atomic-free
sum across them would need a second pass over a dense buffer anyway; `expand`'s backward is that
pass (a deterministic torch sum, accumulated in float32 for 16-bit masks), and it also does the
shape bookkeeping (rank-3 inputs, every broadcast shape). Memory: one (B, Hq, Nq, Nk) tensor of the
mask's dtype for the backward's duration, what eager attention holds for its probabilities. Entries
the kernels clamp at -2e38 (common._MIN_FINITE_BIAS) get their dS like the others: the clamp only
keeps the forward finite where torch, which has none, is finite too.
"""
import torch
from torch import Tensor

from kernels.shared.custom_ops import NAMESPACE, dropout_of, refuse_gradients
from kernels.sdpa.triton.backward import launch_backward
from kernels.sdpa.triton.common import accumulator_dtype, empty_attention_output
from kernels.sdpa.triton.decode import launch_decode, plan_num_splits
from kernels.sdpa.triton.forward import launch_forward
from kernels.sdpa.variants import AttentionVariants


def op_variants(window_left, window_right, softcap, alibi_slopes, sinks) -> AttentionVariants | None:
    """The launchers' variants from the ops' flat arguments (checked by kernels.attention before); the
    varlen ops (varlen_custom_ops.py) take the same five."""
    if window_left is None and window_right is None and softcap is None and alibi_slopes is None and sinks is None:
        return None  # the common call, without building the dataclass (host time)
    window = None if window_left is None and window_right is None else (window_left, window_right)
    variants = AttentionVariants(window, softcap, alibi_slopes, sinks)
    return variants if variants.names() else None


def _empty_lse(query: Tensor, return_lse: bool) -> Tensor:
    if not return_lse:
        return query.new_empty(0, dtype=accumulator_dtype(query.dtype))  # an int size: faster than (0,)
    batch, heads, n_queries, _ = query.shape
    return query.new_empty((batch, heads, n_queries), dtype=accumulator_dtype(query.dtype))


def attention_forward_body(
    query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None, is_causal: bool, scale: float,
    dropout_p: float, seed: Tensor | None, return_lse: bool,
    window_left: int | None = None, window_right: int | None = None, softcap: float | None = None,
    alibi_slopes: Tensor | None = None, sinks: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """(out, lse) of rank-4 inputs; `mask` already broadcast to (B, Hq, Nq, Nk) (stride-0 view).
    Few queries over many keys run split-K (kernels/sdpa/triton/decode.py), the rest the normal kernel.
    The `attention_forward` op's implementation, which kernels.attention also calls directly where the
    dispatcher has nothing to do (kernels/shared/custom_ops.runs_without_dispatcher)."""
    lse = _empty_lse(query, return_lse)
    out, lse_arg = empty_attention_output(query, value), lse if return_lse else None
    dropout = dropout_of(dropout_p, seed)
    variants = op_variants(window_left, window_right, softcap, alibi_slopes, sinks)
    num_splits = plan_num_splits(query, key, is_causal, dropout)
    if num_splits > 1:
        launch_decode(query, key, value, mask, scale, num_splits, out=out, lse=lse_arg, variants=variants)
    else:
        launch_forward(query, key, value, mask, is_causal, scale, out=out, lse=lse_arg, dropout=dropout,
                       variants=variants)
    return out, lse


attention_forward = torch.library.custom_op(f"{NAMESPACE}::attention_forward", mutates_args=())(
    attention_forward_body)


@attention_forward.register_fake
def _(query, key, value, mask, is_causal, scale, dropout_p, seed, return_lse, window_left=None, window_right=None,
      softcap=None, alibi_slopes=None, sinks=None):
    return empty_attention_output(query, value), _empty_lse(query, return_lse)


@torch.library.custom_op(f"{NAMESPACE}::attention_backward", mutates_args=())
def attention_backward(
    grad_out: Tensor, query: Tensor, key: Tensor, value: Tensor, out: Tensor, lse: Tensor, mask: Tensor | None,
    is_causal: bool, scale: float, dropout_p: float, seed: Tensor | None,
    window_left: int | None = None, window_right: int | None = None, softcap: float | None = None,
    alibi_slopes: Tensor | None = None, sinks: Tensor | None = None, mask_grad: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(dq, dk, dv, dsinks, dmask) of the forward that returned `out` and `lse` with the same other
    arguments; dmask (the float mask's, with `mask_grad`) is dense: see the module docstring."""
    dsinks = empty_sink_grad(query, sinks)
    dmask = _empty_mask_grad(query, mask, mask_grad)
    dq, dk, dv = launch_backward(query, key, value, out, lse, grad_out, mask, is_causal, scale,
                                 dropout=dropout_of(dropout_p, seed),
                                 variants=op_variants(window_left, window_right, softcap, alibi_slopes, sinks),
                                 sinks_grad=None if sinks is None else dsinks, mask_grad=dmask if mask_grad else None)
    return dq, dk, dv, dsinks, dmask


def empty_sink_grad(query: Tensor, sinks: Tensor | None) -> Tensor:
    return query.new_empty((0,)) if sinks is None else torch.empty_like(sinks)


def _empty_mask_grad(query: Tensor, mask: Tensor | None, mask_grad: bool) -> Tensor:
    """The dense, contiguous (B, Hq, Nq, Nk) gradient of the mask's broadcast view, in its dtype."""
    if not mask_grad:
        return query.new_empty((0,))
    if mask is None or not mask.dtype.is_floating_point:
        raise ValueError("mask_grad=True needs a float mask")
    return torch.empty(mask.shape, dtype=mask.dtype, device=mask.device)


@attention_backward.register_fake
def _(grad_out, query, key, value, out, lse, mask, is_causal, scale, dropout_p, seed, window_left=None,
      window_right=None, softcap=None, alibi_slopes=None, sinks=None, mask_grad=False):
    return (torch.empty_like(query), torch.empty_like(key), torch.empty_like(value), empty_sink_grad(query, sinks),
            _empty_mask_grad(query, mask, mask_grad))


_MASK_INDEX = 3
_NO_GRADIENT = {12: "alibi_slopes"}  # attention_forward's inputs the backward cannot differentiate


def _setup_context(ctx, inputs, output):
    query, key, value, mask, is_causal, scale, dropout_p, seed, _ = inputs[:9]
    window_left, window_right, softcap, alibi_slopes, sinks = (*inputs[9:], *(None,) * (14 - len(inputs)))
    out, lse = output
    ctx.save_for_backward(query, key, value, out, lse, mask, seed, alibi_slopes, sinks)
    ctx.is_causal, ctx.scale, ctx.dropout_p = is_causal, scale, dropout_p
    ctx.window_left, ctx.window_right, ctx.softcap = window_left, window_right, softcap


def _backward(ctx, grad_out, _grad_lse):
    """The log-sum-exp is an internal statistic: its gradient is ignored (it is never used as a loss)."""
    refuse_gradients(ctx, _NO_GRADIENT, "attention")
    query, key, value, out, lse, mask, seed, alibi_slopes, sinks = ctx.saved_tensors
    if lse.numel() == 0 and query.numel() > 0:
        raise RuntimeError("attention_forward was called with return_lse=False: it cannot be differentiated")
    mask_grad = ctx.needs_input_grad[_MASK_INDEX]  # a bool mask never requires grad
    grad_query, grad_key, grad_value, grad_sinks, grad_mask = attention_backward(
        grad_out, query, key, value, out, lse, mask, ctx.is_causal, ctx.scale, ctx.dropout_p, seed,
        ctx.window_left, ctx.window_right, ctx.softcap, alibi_slopes, sinks, mask_grad)
    grads = ((grad_query, grad_key, grad_value, grad_mask if mask_grad else None) + (None,) * 9
             + (grad_sinks if sinks is not None else None,))
    return grads[:len(ctx.needs_input_grad)]


attention_forward.register_autograd(_backward, setup_context=_setup_context)


def _refuse_double_backward(ctx, *grads):
    """The backward kernels are not differentiable themselves: a second derivative would otherwise
    fail inside torch with "no autograd formula", naming nothing of ours."""
    raise NotImplementedError(
        "the triton attention backend has no double backward (a gradient of its gradient, as "
        "create_graph=True asks for): use backend='torch' or backend='reference' for higher-order gradients"
    )


attention_backward.register_autograd(_refuse_double_backward)
