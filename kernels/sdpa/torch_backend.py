"""The torch backend of `kernels.attention`: torch's own SDPA, under our checks and semantics.

A small call on this backend is bound by host time: issue 14 allows it at most 2 us more than SDPA
called directly (docs/benchmarks/overhead.md measures it). SDPA checks dtypes, devices, masks and
dropout_p itself, in C++, so the common call goes to it after only the checks torch lacks
(`sdpa_unless_refused`); a call torch refuses comes back to `kernels.attention`'s full checks, which
name the argument in our words, or let torch's own error through where they accept the call.
"""
import math

import torch
import torch.nn.functional as F

from kernels.sdpa.validation import plain_scores_shape


def sdpa_unless_refused(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa) -> torch.Tensor | None:
    """SDPA's output for a call that torch and our full checks both accept; None for any other call,
    which the caller then runs through the full checks. This function tests what torch (2.13, CPU)
    accepts and the full checks refuse: ranks other than 3 and 4, or two ranks; a batch or head count
    of key or value that broadcasts (torch broadcasts it); a value whose key count differs from the
    key's (torch returns an answer); key heads 0 under enable_gqa (torch stops the process with
    SIGFPE); a mask with is_causal, or on another device (torch runs both); a non-finite scale; complex
    tensors on the meta device (which torch.compile's fake tensors resemble). Defaults stay out of the
    call: torch parses every argument it is given (keywords: 0.5 us a call, a quarter of the budget; a
    default dropout_p and is_causal given: 0.3 us; scale=None beside enable_gqa: 0.15 us).
    tests/sdpa/test_torch_backend.py runs every kind of call through both ways."""
    try:
        if (plain_scores_shape(query, key, value, enable_gqa) is None or not query.is_floating_point()
                or (attn_mask is not None and not (is_causal is False and (  # is_cpu reads no device object
                    attn_mask.is_cpu if query.is_cpu else attn_mask.device == query.device)))
                or not (scale is None or (type(scale) is float and math.isfinite(scale)))):
            return None
        if is_causal is False and type(dropout_p) is float and dropout_p == 0.0:
            arguments = (query, key, value) if attn_mask is None else (query, key, value, attn_mask)
        else:
            arguments = (query, key, value, attn_mask, dropout_p, is_causal)
        if scale is not None:
            return F.scaled_dot_product_attention(*arguments, scale=scale, enable_gqa=enable_gqa)
        if enable_gqa is not False:
            return F.scaled_dot_product_attention(*arguments, enable_gqa=enable_gqa)
        return F.scaled_dot_product_attention(*arguments)
    except Exception:  # torch refused the call, or an argument is no tensor: the full checks say which (a
        return None    # failure of the computation itself, out of memory say, recurs there and is raised)


def sdpa(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa) -> torch.Tensor:
    """SDPA on arguments the full checks accepted."""
    if attn_mask is not None and attn_mask.dim() == 1:
        attn_mask = attn_mask.unsqueeze(0)  # torch SDPA rejects a 1-D (Nk,) mask that broadcasts fine
    return F.scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale=scale,
                                          enable_gqa=enable_gqa)
