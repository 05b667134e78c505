"""The course's MultiHeadAttention module, with its names kept and its math corrected.

Compared with the course's version: scores are scaled by 1/sqrt(head_dim), keys are transposed over
their last two dims (the course permuted the batch dim away), and everything is batch-first.
"""
import math

import torch
from torch import nn


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model: int, num_heads: int):
        super().__init__()
        if d_model % num_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.d_model = d_model
        self.head_dim = d_model // num_heads
        self.query_linear = nn.Linear(d_model, d_model, bias=False)
        self.key_linear = nn.Linear(d_model, d_model, bias=False)
        self.value_linear = nn.Linear(d_model, d_model, bias=False)
        self.output_linear = nn.Linear(d_model, d_model)

    def split_heads(self, x: torch.Tensor, batch_size: int) -> torch.Tensor:
        seq_length = x.size(1)
        x = x.reshape(batch_size, seq_length, self.num_heads, self.head_dim)  # (B, N, H, Dh)
        return x.permute(0, 2, 1, 3)  # (B, H, N, Dh)

    def compute_attention(self, query, key, mask=None) -> torch.Tensor:
        """Attention weights (B, H, Nq, Nk); `mask == 0` marks the pairs that must not attend."""
        scores = query @ key.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, H, Nq, Nk)
        if mask is not None:
            scores = scores.masked_fill(mask == 0, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return weights.nan_to_num(0.0)  # a query with every key masked attends to nothing

    def combine_heads(self, x: torch.Tensor, batch_size: int) -> torch.Tensor:
        x = x.permute(0, 2, 1, 3).contiguous()  # (B, N, H, Dh)
        return x.view(batch_size, -1, self.d_model)  # (B, N, d_model)

    def forward(self, query, key, value, mask=None) -> torch.Tensor:
        """query (B, Nq, d_model), key/value (B, Nk, d_model) -> (B, Nq, d_model)."""
        batch_size = query.size(0)
        query = self.split_heads(self.query_linear(query), batch_size)
        key = self.split_heads(self.key_linear(key), batch_size)
        value = self.split_heads(self.value_linear(value), batch_size)
        attention_weights = self.compute_attention(query, key, mask)
        output = attention_weights @ value  # (B, H, Nq, Dh)
        return self.output_linear(self.combine_heads(output, batch_size))
