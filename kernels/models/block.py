"""The one Transformer block of every family, and a stack of them.

A block is self-attention (causal or not), then cross-attention to an encoder's output when built
with it, then a feed-forward network; each sub-layer is residual, with the LayerNorm after the sum
(post-norm, the original Transformer) or before the sub-layer (pre-norm, `config.norm_first`).
"""
from collections.abc import Callable

import torch
from torch import nn

from kernels.models.attention import Attention, FeedForward
from kernels.models.cache import BlockCache, Cache, KVCache
from kernels.models.config import ModelConfig
from kernels.models.packing import Packing


def _layer_norm(config: ModelConfig) -> nn.LayerNorm:
    return nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)


class Block(nn.Module):
    def __init__(self, config: ModelConfig, *, cross_attention: bool = False):
        super().__init__()
        self.norm_first = config.norm_first
        self.self_attention = Attention(config)
        self.self_attention_norm = _layer_norm(config)
        self.cross_attention = Attention(config) if cross_attention else None
        self.cross_attention_norm = _layer_norm(config) if cross_attention else None
        self.feed_forward = FeedForward(config)
        self.feed_forward_norm = _layer_norm(config)
        self.dropout = nn.Dropout(config.dropout)

    def _residual(self, x: torch.Tensor, norm: nn.LayerNorm, sublayer: Callable) -> torch.Tensor:
        if self.norm_first:
            return x + self.dropout(sublayer(norm(x)))
        return norm(x + self.dropout(sublayer(x)))

    def forward(
        self,
        x: torch.Tensor,
        *,
        key_padding: torch.Tensor | None = None,
        causal: bool = False,
        memory: torch.Tensor | None = None,
        memory_padding: torch.Tensor | None = None,
        cache: BlockCache | None = None,
        packing: Packing | None = None,
        memory_packing: Packing | None = None,
    ) -> torch.Tensor:
        """x (B, N, d); key_padding (B, Nk) True = real, over every self-attended key; memory (B, M, d)
        and memory_padding (B, M) for cross-attention; packing: x (1, total, d) holds packed sequences,
        and memory_packing cuts a packed memory (1, total_memory, d) into their sources -> (B, N, d)."""
        self_cache = None if cache is None else cache.self_attention
        x = self._residual(x, self.self_attention_norm,
                           lambda h: self.self_attention(h, key_padding=key_padding, causal=causal, cache=self_cache,
                                                         packing=packing))
        if self.cross_attention is not None:
            cross_cache = None if cache is None else cache.cross_attention
            x = self._residual(x, self.cross_attention_norm,
                               lambda h: self.cross_attention(h, memory, key_padding=memory_padding, cache=cross_cache,
                                                              packing=packing, source_packing=memory_packing))
        return self._residual(x, self.feed_forward_norm, self.feed_forward)


class Stack(nn.Module):
    """`n_layers` blocks, and a final LayerNorm when the blocks are pre-norm (their output is un-normed)."""

    def __init__(self, config: ModelConfig, n_layers: int, *, causal: bool, cross_attention: bool = False):
        super().__init__()
        self.config, self.causal = config, causal
        self.blocks = nn.ModuleList(Block(config, cross_attention=cross_attention) for _ in range(n_layers))
        self.final_norm = _layer_norm(config) if config.norm_first else nn.Identity()

    def forward(self, x: torch.Tensor, *, key_padding=None, memory=None, memory_padding=None,
                cache: Cache | None = None, packing: Packing | None = None,
                memory_packing: Packing | None = None) -> torch.Tensor:
        """x (B, N, d) -> (B, N, d); the arguments as in `Block.forward`."""
        for index, block in enumerate(self.blocks):
            block_cache = None if cache is None else cache.blocks[index]
            x = block(x, key_padding=key_padding, causal=self.causal, memory=memory, memory_padding=memory_padding,
                      cache=block_cache, packing=packing, memory_packing=memory_packing)
        return self.final_norm(x)

    def new_cache(self, batch: int, max_len: int, memory_len: int | None, device, dtype) -> Cache:
        """Empty caches for every block: self-attention over `max_len` positions, and cross-attention
        over the `memory_len` encoder outputs when the blocks have it."""
        config = self.config

        def kv(length: int) -> KVCache:
            return KVCache(batch, config.n_heads, length, config.head_dim, device=device, dtype=dtype)

        with_cross = self.blocks[0].cross_attention is not None
        return Cache([BlockCache(kv(max_len), kv(memory_len) if with_cross else None) for _ in self.blocks])
