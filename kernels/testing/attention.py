"""The pass rule applied to attention: an output against `reference` attention on the same inputs."""
import torch

import reference
from kernels.testing.parity import ParityResult, assert_passes, check_parity
from kernels.testing.tolerances import Tolerance


def check_attention(
    out: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
    *,
    window: tuple[int | None, int | None] | None = None,
    softcap: float | None = None,
    alibi_slopes: torch.Tensor | None = None,
    sinks: torch.Tensor | None = None,
    tolerance: Tolerance | None = None,
) -> ParityResult:
    """Judge `out` (computed from these `kernels.attention` arguments, attention variants included)
    by the pass rule.

    The exact result is the reference math in float64; the baseline is the same math in the inputs'
    own precision.
    """
    if dropout_p != 0.0:
        raise ValueError(f"parity needs deterministic outputs: dropout_p must be 0.0, got {dropout_p}")
    options = dict(is_causal=is_causal, scale=scale, enable_gqa=enable_gqa, window=window, softcap=softcap)
    tensors = dict(attn_mask=attn_mask, alibi_slopes=alibi_slopes, sinks=sinks)
    float64_tensors = {name: tensor.double() if tensor is not None and tensor.is_floating_point() else tensor
                       for name, tensor in tensors.items()}
    exact = reference.scaled_dot_product_attention(
        query.double(), key.double(), value.double(), **float64_tensors, **options
    )
    baseline = reference.scaled_dot_product_attention(query, key, value, **tensors, **options)
    return check_parity(out, exact, baseline, tolerance=tolerance)


def assert_attention_close(out: torch.Tensor, *args, **kwargs) -> ParityResult:
    """`check_attention` (same arguments) that raises AssertionError, with the full report, when the
    rule fails."""
    return assert_passes(check_attention(out, *args, **kwargs))
