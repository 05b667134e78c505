"""The KV cache of cached decoding: preallocated buffers, grown by writing in place.

Each attention layer owns a `KVCache`: keys and values (B, H, max_len, Dh) allocated once. A step
writes its new keys at [length, length + n) and attends over `k[:, :, :length + n]`, a strided view
that the attention kernel reads directly: no copy of the past per step. A cross-attention layer's
cache is filled once, from the encoder's output, and then only read.
"""
from dataclasses import dataclass

import torch


class KVCache:
    """Keys and values of one attention layer, (B, H, max_len, Dh) each, the first `length` filled."""

    def __init__(self, batch: int, n_heads: int, max_len: int, head_dim: int, *, device=None, dtype=None):
        shape = (batch, n_heads, max_len, head_dim)
        self.k = torch.empty(shape, device=device, dtype=dtype)
        self.v = torch.empty(shape, device=device, dtype=dtype)
        self.length = 0

    @property
    def max_len(self) -> int:
        return self.k.size(2)

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k, v (B, H, n, Dh) after the filled part; return views of every key and value so far."""
        end = self.length + k.size(2)
        if end > self.max_len:
            raise ValueError(f"the KV cache holds {self.max_len} positions: {self.length} filled + {k.size(2)} new")
        self.k[:, :, self.length:end] = k
        self.v[:, :, self.length:end] = v
        self.length = end
        return self.filled()

    def filled(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, H, length, Dh) views of the filled part, no copy."""
        return self.k[:, :, : self.length], self.v[:, :, : self.length]


@dataclass
class BlockCache:
    self_attention: KVCache
    cross_attention: KVCache | None = None  # filled once from the encoder's output


class Cache:
    """The caches of every block of a decoder stack."""

    def __init__(self, blocks: list[BlockCache]):
        self.blocks = blocks

    @property
    def length(self) -> int:
        """Positions already decoded (the same in every block)."""
        return self.blocks[0].self_attention.length

    @property
    def max_len(self) -> int:
        return self.blocks[0].self_attention.max_len

    def crop(self, length: int) -> None:
        """Forget every position from `length` on (the buffers stay allocated); e.g. to decode again
        from the same prompt."""
        if isinstance(length, bool) or not isinstance(length, int) or not 0 <= length <= self.length:
            raise ValueError(f"length must be an int in [0, {self.length}], got {length!r}")
        for block in self.blocks:
            block.self_attention.length = length
