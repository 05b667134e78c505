"""nn.Module wrappers over the positional-encoding functional API."""
import math

import torch
from torch import nn

import reference
from kernels.positional.functional import add_positional_encoding, sinusoidal_embedding
from kernels.shared.checks import check_probability


class PositionalEncoder(reference.PositionalEncoder):
    """The course's PositionalEncoder(d_model, max_seq_length=512) on the fused kernel.

    The encoding is computed in the kernel, so any length works: `max_seq_length` only sizes the
    `pe` buffer, which is kept (1, max_seq_length, d_model) so that state_dicts load both ways with
    the course's module, and is never read. Extras, all off by default: `dropout` (applied in
    training only), `scale_input` (x * sqrt(d_model) first), and in forward a `position_offset`
    (decode step t) or `position_ids` (B, N) for left-padded batches.
    """

    def __init__(self, d_model: int, max_seq_length: int = 512, *, dropout: float = 0.0, scale_input: bool = False):
        super().__init__(d_model, max_seq_length)
        check_probability("dropout", dropout)
        self.dropout_p = float(dropout)
        self.scale_input = scale_input

    def forward(
        self, x: torch.Tensor, *, position_offset: int = 0, position_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, N, d_model) -> dropout(x [* sqrt(d_model)] + pe[positions]), any N."""
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.size(-1) != self.d_model:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must have shape (batch, seq, d_model={self.d_model}), got {shape}")
        return add_positional_encoding(
            x,
            position_offset=position_offset,
            position_ids=position_ids,
            scale=math.sqrt(self.d_model) if self.scale_input else 1.0,
            dropout_p=self.dropout_p if self.training else 0.0,
        )

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, max_seq_length={self.max_seq_length}, dropout={self.dropout_p}, "
                f"scale_input={self.scale_input}")


class SinusoidalEmbedding(nn.Module):
    """Token ids -> embedding * sqrt(d_model) + sinusoidal encoding (+ dropout), one fused kernel.

    `weight` (vocab_size, d_model) is named and initialised as in nn.Embedding (N(0, 1), the
    `padding_idx` row zero and never updated), so an nn.Embedding state_dict loads. Dropout is
    applied in training only. forward takes a `position_offset` or `position_ids` as
    PositionalEncoder does.
    """

    def __init__(self, vocab_size: int, d_model: int, padding_idx: int | None = None, *, dropout: float = 0.0,
                 device=None, dtype=None):
        super().__init__()
        if padding_idx is not None and not -vocab_size <= padding_idx < vocab_size:
            raise ValueError(f"padding_idx must be in [-{vocab_size}, {vocab_size}), got {padding_idx}")
        self.num_embeddings = vocab_size
        self.embedding_dim = d_model
        self.padding_idx = padding_idx % vocab_size if padding_idx is not None else None
        check_probability("dropout", dropout)
        self.dropout_p = float(dropout)
        self.weight = nn.Parameter(torch.empty(vocab_size, d_model, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight)
        if self.padding_idx is not None:
            with torch.no_grad():
                self.weight[self.padding_idx].zero_()

    def forward(self, token_ids: torch.Tensor, *, position_offset: int = 0,
                position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """token_ids (B, N) -> (B, N, d_model)."""
        return sinusoidal_embedding(
            token_ids,
            self.weight,
            position_offset=position_offset,
            position_ids=position_ids,
            padding_idx=self.padding_idx,
            dropout_p=self.dropout_p if self.training else 0.0,
        )

    def extra_repr(self) -> str:
        padding = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{padding}, dropout={self.dropout_p}"
