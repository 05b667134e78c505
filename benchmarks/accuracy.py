"""Error of an attention output against the float64 `reference` math on the same inputs."""

import torch

import reference
from benchmarks.attention_inputs import AttentionInputs

# The eager reference materialises (heads, Nq, Nk) float64 scores and a few temporaries of that size:
# chunking over batch rows and heads bounds them (2**27 elements = 1 GiB each) on any device, so the
# reference runs where the inputs are instead of moving them to the CPU.
_SCORE_ELEMENTS_PER_CHUNK = 1 << 27


def float64_reference(inputs: AttentionInputs) -> torch.Tensor:
    batch, heads, q_len, _ = inputs.q.shape
    kv_len = inputs.k.size(-2)
    heads_per_chunk = max(1, _SCORE_ELEMENTS_PER_CHUNK // (q_len * kv_len))
    out = torch.empty(inputs.q.shape, dtype=torch.float64, device=inputs.q.device)
    for b in range(batch):
        for h in range(0, heads, heads_per_chunk):
            rows = (slice(b, b + 1), slice(h, h + heads_per_chunk))
            out[rows] = reference.scaled_dot_product_attention(
                inputs.q[rows].double(),
                inputs.k[rows].double(),
                inputs.v[rows].double(),
                attn_mask=_mask_rows(inputs.attn_mask, rows),
                is_causal=inputs.is_causal,
            )
    return out


def _mask_rows(mask: torch.Tensor | None, rows: tuple[slice, slice]) -> torch.Tensor | None:
    """The mask's part for these (batch, head) rows; broadcast (size-1) dims stay whole."""
    if mask is None:
        return None
    batch_rows, head_rows = rows
    mask = mask if mask.size(0) == 1 else mask[batch_rows]
    return mask if mask.size(1) == 1 else mask[:, head_rows]


def max_abs_error(output: torch.Tensor, expected: torch.Tensor) -> float:
    return (output.double() - expected).abs().max().item()
