"""The varlen attention kernels as torch.library custom ops: `triton_attention_kernels::varlen_attention_forward`
and `::varlen_attention_backward`, with fake implementations and the autograd formula linking them.

Same pattern, and reasons, as the dense ops (kernels/sdpa/custom_ops.py): one opaque graph node for
torch.compile per launch, the real implementation hands the packed tensors to the kernels as they are.
Fake outputs mirror the real ones:
- out (total_q, Hq, Dv), contiguous;
- lse (Hq, total_q), fp32 (fp64 for fp64 inputs), or an empty (0,) tensor when `return_lse` is False;
- dq, dk, dv are `empty_like` q, k, v; dsinks `empty_like` the sinks, or an empty (0,) tensor.
The attention variants travel as the dense ops' five trailing arguments; sinks get a gradient, slopes
do not (the backward refuses, naming them).
"""
import torch
from torch import Tensor

from kernels.shared.custom_ops import NAMESPACE, dropout_of, refuse_gradients
from kernels.sdpa.custom_ops import empty_sink_grad, op_variants
from kernels.sdpa.triton.sequences import PackedSequences
from kernels.sdpa.triton.varlen import empty_varlen_lse, launch_varlen_backward, launch_varlen_forward


def _packed_sequences(cu_seqlens_q: Tensor, cu_seqlens_k: Tensor, max_seqlen_q: int,
                      max_seqlen_k: int) -> PackedSequences:
    """The kernels read offset b at cu_seqlens + b: a strided offsets view is copied (on the device)."""
    return PackedSequences(cu_seqlens_q.contiguous(), cu_seqlens_k.contiguous(), max_seqlen_q, max_seqlen_k)


@torch.library.custom_op(f"{NAMESPACE}::varlen_attention_forward", mutates_args=())
def varlen_attention_forward(
    q: Tensor, k: Tensor, v: Tensor, cu_seqlens_q: Tensor, cu_seqlens_k: Tensor, max_seqlen_q: int,
    max_seqlen_k: int, is_causal: bool, scale: float, dropout_p: float, seed: Tensor | None, return_lse: bool,
    window_left: int | None = None, window_right: int | None = None, softcap: float | None = None,
    alibi_slopes: Tensor | None = None, sinks: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """(out, lse) of packed q (total_q, Hq, D), k/v (total_k, Hkv, D|Dv) cut by the int32 offsets; the
    five trailing variant arguments as in the dense op (kernels/sdpa/custom_ops.py)."""
    sequences = _packed_sequences(cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k)
    return launch_varlen_forward(q, k, v, sequences, is_causal, scale, dropout=dropout_of(dropout_p, seed),
                                 return_lse=return_lse,
                                 variants=op_variants(window_left, window_right, softcap, alibi_slopes, sinks))


@varlen_attention_forward.register_fake
def _(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, is_causal, scale, dropout_p, seed,
      return_lse, window_left=None, window_right=None, softcap=None, alibi_slopes=None, sinks=None):
    return q.new_empty(q.size(0), q.size(1), v.size(2)), empty_varlen_lse(q, return_lse)


@torch.library.custom_op(f"{NAMESPACE}::varlen_attention_backward", mutates_args=())
def varlen_attention_backward(
    grad_out: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, cu_seqlens_q: Tensor,
    cu_seqlens_k: Tensor, max_seqlen_q: int, max_seqlen_k: int, is_causal: bool, scale: float, dropout_p: float,
    seed: Tensor | None, window_left: int | None = None, window_right: int | None = None,
    softcap: float | None = None, alibi_slopes: Tensor | None = None, sinks: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(dq, dk, dv, dsinks) of the forward that returned `out` and `lse` with the same other arguments
    (dsinks an empty (0,) tensor without sinks)."""
    sequences = _packed_sequences(cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k)
    dsinks = empty_sink_grad(q, sinks)
    dq, dk, dv = launch_varlen_backward(q, k, v, out, lse, grad_out, sequences, is_causal, scale,
                                        dropout=dropout_of(dropout_p, seed),
                                        variants=op_variants(window_left, window_right, softcap, alibi_slopes, sinks),
                                        sinks_grad=None if sinks is None else dsinks)
    return dq, dk, dv, dsinks


@varlen_attention_backward.register_fake
def _(grad_out, q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, is_causal, scale,
      dropout_p, seed, window_left=None, window_right=None, softcap=None, alibi_slopes=None, sinks=None):
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v), empty_sink_grad(q, sinks)


_VARIANT_INPUTS = 12  # varlen_attention_forward's first variant argument (window_left)
_NO_GRADIENT = {_VARIANT_INPUTS + 3: "alibi_slopes"}  # inputs the backward cannot differentiate


def _setup_context(ctx, inputs, output):
    q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, is_causal, scale, dropout_p, seed, _ = (
        inputs[:_VARIANT_INPUTS])
    window_left, window_right, softcap, alibi_slopes, sinks = (*inputs[_VARIANT_INPUTS:],
                                                               *(None,) * (_VARIANT_INPUTS + 5 - len(inputs)))
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k, seed, alibi_slopes, sinks)
    ctx.max_seqlens, ctx.is_causal, ctx.scale, ctx.dropout_p = (max_seqlen_q, max_seqlen_k), is_causal, scale, dropout_p
    ctx.window_left, ctx.window_right, ctx.softcap = window_left, window_right, softcap


def _backward(ctx, grad_out, _grad_lse):
    """The log-sum-exp is an internal statistic: its gradient is ignored."""
    refuse_gradients(ctx, _NO_GRADIENT, "varlen_attention")
    q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k, seed, alibi_slopes, sinks = ctx.saved_tensors
    if lse.numel() == 0 and q.numel() > 0:
        raise RuntimeError("varlen_attention_forward was called with return_lse=False: it cannot be differentiated")
    dq, dk, dv, dsinks = varlen_attention_backward(
        grad_out, q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k, *ctx.max_seqlens, ctx.is_causal, ctx.scale,
        ctx.dropout_p, seed, ctx.window_left, ctx.window_right, ctx.softcap, alibi_slopes, sinks)
    grads = (dq, dk, dv) + (None,) * (_VARIANT_INPUTS + 1) + (dsinks if sinks is not None else None,)
    return grads[:len(ctx.needs_input_grad)]


varlen_attention_forward.register_autograd(_backward, setup_context=_setup_context)


def _refuse_double_backward(ctx, *grads):
    raise NotImplementedError(
        "the triton varlen_attention backend has no double backward (a gradient of its gradient, as "
        "create_graph=True asks for): use backend='torch' or backend='reference' for higher-order gradients"
    )


varlen_attention_backward.register_autograd(_refuse_double_backward)
