"""The pass rule for kernel outputs, with its tolerances in one table.

A kernel passes when its max error against the float64 reference is at most ERROR_RATIO times the
error of the plain PyTorch computation in the same low precision, plus an absolute floor. Nothing
is normalised before comparing, so a wrong scale or a misplaced mask shows up at full size.
"""
import torch

import reference

ERROR_RATIO = 2.0
ABSOLUTE_FLOOR = {torch.float32: 2e-5, torch.float16: 1e-3, torch.bfloat16: 8e-3}


def _upcast_mask(attn_mask):
    if attn_mask is None or attn_mask.dtype == torch.bool:
        return attn_mask
    return attn_mask.double()


def assert_attention_matches(out, query, key, value, attn_mask=None, is_causal=False, scale=None, enable_gqa=False):
    """Check `out` against reference attention on the same inputs, by the rule above."""
    kwargs = dict(is_causal=is_causal, scale=scale, enable_gqa=enable_gqa)
    exact = reference.scaled_dot_product_attention(
        query.double(), key.double(), value.double(), attn_mask=_upcast_mask(attn_mask), **kwargs)
    plain = reference.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask, **kwargs)
    assert out.shape == exact.shape, f"shape {tuple(out.shape)} != {tuple(exact.shape)}"
    assert out.dtype == query.dtype, f"dtype {out.dtype} != {query.dtype}"
    assert torch.isfinite(out).all(), "output has NaN or inf"
    error = (out.double() - exact).abs().max().item()
    plain_error = (plain.double() - exact).abs().max().item()
    allowed = ERROR_RATIO * plain_error + ABSOLUTE_FLOOR[query.dtype]
    assert error <= allowed, f"max error {error:.3g} > allowed {allowed:.3g} (plain PyTorch error {plain_error:.3g})"
