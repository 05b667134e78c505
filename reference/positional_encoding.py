"""The course's sinusoidal PositionalEncoder: a precomputed (1, max_seq_length, d_model) table."""
import math

import torch
from torch import nn


def sinusoid(positions: torch.Tensor, d_model: int, dtype=torch.float32) -> torch.Tensor:
    """pe[..., 2i] = sin(pos / 10000^(2i/d)), pe[..., 2i+1] = cos(pos / 10000^(2i/d)) for integer
    `positions` of any shape: (..., d_model), on the positions' device."""
    inv_freq = torch.exp(
        torch.arange(0, d_model, 2, dtype=dtype, device=positions.device) * -(math.log(10000.0) / d_model)
    )
    angles = positions.to(dtype).unsqueeze(-1) * inv_freq  # (..., ceil(d/2))
    pe = torch.empty(*positions.shape, d_model, dtype=dtype, device=positions.device)
    pe[..., 0::2] = torch.sin(angles)
    pe[..., 1::2] = torch.cos(angles[..., : d_model // 2])
    return pe


def sinusoidal_table(n_positions: int, d_model: int, dtype=torch.float32) -> torch.Tensor:
    """The (n_positions, d_model) table of `sinusoid` at positions 0 .. n_positions - 1."""
    return sinusoid(torch.arange(n_positions), d_model, dtype)


class PositionalEncoder(nn.Module):
    def __init__(self, d_model: int, max_seq_length: int = 512):
        super().__init__()
        self.d_model = d_model
        self.max_seq_length = max_seq_length
        self.register_buffer("pe", sinusoidal_table(max_seq_length, d_model).unsqueeze(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, N, d_model) with N <= max_seq_length -> x + pe[:, :N]."""
        if x.size(1) > self.max_seq_length:
            raise ValueError(f"sequence length {x.size(1)} exceeds max_seq_length {self.max_seq_length}")
        return x + self.pe[:, : x.size(1)]
