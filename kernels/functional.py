"""The public functional API: validate, pick a backend, run it."""
import math

import torch
import torch.nn.functional as F

import reference
from kernels.backends import note_backend_ran, resolve_backend
from kernels.ops.attention_backward import attention_backward
from kernels.ops.attention_common import accumulator_dtype
from kernels.ops.attention_forward import attention_forward
from kernels.validation import check_attention_inputs, check_triton_limits


class _TritonAttention(torch.autograd.Function):
    """Forward saves only q, k, v, out and the log-sum-exp; the backward recomputes the rest."""

    @staticmethod
    def forward(ctx, query, key, value, mask, is_causal, scale):
        needs_grad = any(ctx.needs_input_grad[:3])
        lse = None
        if needs_grad:
            lse = torch.empty(query.shape[:3], dtype=accumulator_dtype(query.dtype), device=query.device)
        out, lse = attention_forward(query, key, value, mask, is_causal, scale, lse=lse)
        if needs_grad:
            ctx.save_for_backward(query, key, value, out, lse, mask)
            ctx.is_causal, ctx.scale = is_causal, scale
        return out

    @staticmethod
    def backward(ctx, grad_out):
        if ctx.needs_input_grad[3]:
            raise NotImplementedError(
                "the triton attention backend does not compute gradients for attn_mask; "
                "detach the mask or use backend='torch'"
            )
        query, key, value, out, lse, mask = ctx.saved_tensors
        grad_query, grad_key, grad_value = attention_backward(
            query, key, value, out, lse, grad_out, mask, ctx.is_causal, ctx.scale)
        return grad_query, grad_key, grad_value, None, None, None


def _triton_attention(query, key, value, attn_mask, is_causal, scale):
    """Run the kernel on rank-4 views; rank-3 (batch, seq, dim) inputs get a head dim of size 1."""
    rank3 = query.dim() == 3
    if rank3:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
    batch, heads, n_queries, _ = query.shape
    mask = None
    if attn_mask is not None:
        scores_shape = (batch, n_queries, key.size(2)) if rank3 else (batch, heads, n_queries, key.size(2))
        mask = attn_mask.expand(scores_shape)  # a stride-0 view on broadcast dims, never a copy
        if rank3:
            mask = mask.unsqueeze(1)
    out = _TritonAttention.apply(query, key, value, mask, is_causal, scale)
    return out.squeeze(1) if rank3 else out


def attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """torch.nn.functional.scaled_dot_product_attention, fused in Triton.

    Same arguments and semantics: query (B, Hq, Nq, D), key/value (B, Hkv, Nk, D|Dv); a bool
    attn_mask keeps the scores where True, a float one is added; is_causal is top-left aligned;
    a query with no key to attend returns zeros. `backend` ("triton", "torch", "reference") forces
    an implementation; by default CUDA runs Triton, CPU runs torch (or Triton's interpreter when
    TRITON_INTERPRET=1). The Triton result is laid out (B, Nq, Hq, Dv) in memory, like torch's flash
    backend, so `out.transpose(1, 2).reshape(B, Nq, -1)` merges heads without a copy.
    """
    check_attention_inputs(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
    chosen = resolve_backend(backend, query.device)
    if chosen == "triton":
        check_triton_limits(query, value, dropout_p)
        scale = 1.0 / math.sqrt(query.size(-1)) if scale is None else float(scale)
        out = _triton_attention(query, key, value, attn_mask, is_causal, scale)
    else:
        sdpa = F.scaled_dot_product_attention if chosen == "torch" else reference.scaled_dot_product_attention
        out = sdpa(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
                   scale=scale, enable_gqa=enable_gqa)
    note_backend_ran(chosen)
    return out
