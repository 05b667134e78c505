"""The positional-encoding ops in plain PyTorch: the CPU fallback ("torch") and the course's table
("reference"). Same semantics as the Triton kernel; dropout draws its mask from torch's RNG.

"torch" computes the reference's `sinusoid` at the positions asked for; "reference" gathers the rows of
the course's precomputed table."""
import torch
import torch.nn.functional as F

from reference.positional_encoding import sinusoid, sinusoidal_table


def reference_table_rows(positions: torch.Tensor, d_model: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The same values gathered from the course's table (`reference.positional_encoding.sinusoidal_table`)."""
    if positions.numel() == 0:
        return sinusoid(positions, d_model, dtype)
    if positions.min() < 0:
        raise ValueError("the reference backend's table has no negative positions")
    table = sinusoidal_table(int(positions.max()) + 1, d_model, dtype).to(positions.device)
    return table[positions]


ENCODINGS = {"torch": sinusoid, "reference": reference_table_rows}


def encode(source: torch.Tensor, positions: torch.Tensor, scale: float, dropout_p: float, backend: str) -> torch.Tensor:
    """dropout(source * scale + pe[positions]) in float32 (float64 for float64 input), cast back once."""
    compute_dtype = torch.promote_types(source.dtype, torch.float32)
    pe = ENCODINGS[backend](positions, source.size(-1), compute_dtype)
    out = source.to(compute_dtype) * scale + pe
    if dropout_p > 0.0:
        out = F.dropout(out, dropout_p)
    return out.to(source.dtype)


def add_positional_encoding(x, positions, scale, dropout_p, inplace, backend) -> torch.Tensor:
    out = encode(x, positions, scale, dropout_p, backend)
    return x.copy_(out) if inplace else out


def sinusoidal_embedding(token_ids, weight, positions, scale, dropout_p, padding_idx, backend) -> torch.Tensor:
    rows = F.embedding(token_ids, weight, padding_idx=padding_idx)  # (B, N, d)
    return encode(rows, positions, scale, dropout_p, backend)
