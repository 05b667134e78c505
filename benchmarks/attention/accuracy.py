"""Errors of attention outputs and gradients against the float64 `reference` math on the same inputs."""

from collections.abc import Iterator

import torch

import reference
from benchmarks.attention.cases import AttentionInputs

# The eager reference materialises (heads, Nq, Nk) float64 scores and a few temporaries of that size:
# chunking over batch rows and heads bounds them (2**27 elements = 1 GiB each) on any device, so the
# reference runs where the inputs are instead of moving them to the CPU.
_SCORE_ELEMENTS_PER_CHUNK = 1 << 27

Rows = tuple[slice, slice]  # (batch rows, heads) of one chunk


def float64_reference(inputs: AttentionInputs) -> torch.Tensor:
    """The attention output in float64."""
    out = torch.empty(inputs.q.shape, dtype=torch.float64, device=inputs.q.device)
    with torch.no_grad():
        for rows in _chunks(inputs):
            out[rows] = _reference_rows(inputs, rows, [t[rows].double() for t in inputs.leaves])
    return out


def float64_reference_gradients(inputs: AttentionInputs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dq, dk, dv) in float64: autograd through the reference on float64 copies, `inputs.dout` upstream.

    Chunking is exact here too: the benchmark cases have as many key/value heads as query heads, so
    each (batch row, head) is an independent attention problem.
    """
    gradients = tuple(torch.empty(t.shape, dtype=torch.float64, device=t.device) for t in inputs.leaves)
    for rows in _chunks(inputs):
        leaves = [t[rows].detach().double().requires_grad_() for t in inputs.leaves]
        out = _reference_rows(inputs, rows, leaves)
        for gradient, chunk in zip(gradients, torch.autograd.grad(out, leaves, inputs.dout[rows].double())):
            gradient[rows] = chunk
    return gradients


def _chunks(inputs: AttentionInputs) -> Iterator[Rows]:
    batch, heads, q_len, _ = inputs.q.shape
    heads_per_chunk = max(1, _SCORE_ELEMENTS_PER_CHUNK // (q_len * inputs.k.size(-2)))
    for b in range(batch):
        for h in range(0, heads, heads_per_chunk):
            yield slice(b, b + 1), slice(h, h + heads_per_chunk)


def _reference_rows(inputs: AttentionInputs, rows: Rows, qkv: list[torch.Tensor]) -> torch.Tensor:
    return reference.scaled_dot_product_attention(
        *qkv, attn_mask=_mask_rows(inputs.attn_mask, rows), is_causal=inputs.is_causal,
        **_variant_rows(inputs.variants, rows)
    )


def _variant_rows(variants: dict, rows: Rows) -> dict:
    """The variants for these heads: per-head slopes and sinks sliced (float64, as the inputs are)."""
    _, head_rows = rows
    return {name: value[head_rows].double() if torch.is_tensor(value) else value for name, value in variants.items()}


def _mask_rows(mask: torch.Tensor | None, rows: Rows) -> torch.Tensor | None:
    """The mask's part for these (batch, head) rows; broadcast (size-1 or missing) dims stay whole."""
    if mask is None:
        return None
    mask = mask.view((1,) * (4 - mask.dim()) + mask.shape)  # (Nq, Nk) -> (1, 1, Nq, Nk), a view
    batch_rows, head_rows = rows
    mask = mask if mask.size(0) == 1 else mask[batch_rows]
    return mask if mask.size(1) == 1 else mask[:, head_rows]


def max_abs_error(output: torch.Tensor, expected: torch.Tensor) -> float:
    return (output.detach().double() - expected).abs().max().item()


def max_abs_errors(outputs: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per named output (out, or dq, dk, dv): max |output - float64 expected|."""
    return {name: max_abs_error(output, expected[name]) for name, output in outputs.items()}
