"""The one attention module of the model families: self- or cross-attention, with an optional KV cache."""
import torch
import torch.nn.functional as F
from torch import nn

from kernels.sdpa.functional import attention, causal_attention_with_key_padding
from kernels.sdpa.varlen import varlen_attention
from kernels.sdpa.masks import causal_keep_mask
from kernels.models.cache import KVCache
from kernels.models.config import ModelConfig
from kernels.models.packing import Packing


def attention_mask(key_padding: torch.Tensor | None, n_queries: int, n_keys: int, causal: bool, device):
    """The kernel's (attn_mask, is_causal) for keys marked real by `key_padding` (B, Nk) bool, True = real.

    Causal masks are bottom-right aligned: the queries are the last `n_queries` of the `n_keys`
    positions (a cached decoding step). With Nq == Nk that is the kernel's own top-left `is_causal`,
    and one query sees every key, so an explicit mask is built only for several new queries over a
    non-empty cache (padding and causality with Nq == Nk take `causal_attention_with_key_padding`
    instead, see Attention.forward). A padding mask alone stays (B, 1, 1, Nk), the shape whose padded
    key tiles the kernel skips.
    """
    padding = None if key_padding is None else key_padding[:, None, None, :]  # (B, 1, 1, Nk)
    if not causal or n_queries == 1:
        return padding, False
    if padding is None and n_queries == n_keys:
        return None, True
    keep = causal_keep_mask(n_queries, n_keys, device, past_keys=n_keys - n_queries)  # (Nq, Nk)
    return (keep if padding is None else keep & padding), False  # (Nq, Nk) or (B, 1, Nq, Nk)


class Attention(nn.Module):
    """Multi-head attention on `kernels.attention`. Queries come from x; keys and values from x
    (self-attention) or from `source` (cross-attention). With a cache, self-attention appends this
    step's keys and values and attends over all of them; cross-attention projects `source` once,
    on the first step, and reads the cache afterwards."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_heads, self.head_dim = config.n_heads, config.head_dim
        self.dropout_p = config.dropout
        self.q_proj = nn.Linear(config.d_model, config.d_model)
        self.k_proj = nn.Linear(config.d_model, config.d_model)
        self.v_proj = nn.Linear(config.d_model, config.d_model)
        self.out_proj = nn.Linear(config.d_model, config.d_model)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.n_heads, self.head_dim)).transpose(1, 2)  # (B, N, d) -> (B, H, N, Dh), a view

    def forward(
        self,
        x: torch.Tensor,
        source: torch.Tensor | None = None,
        *,
        key_padding: torch.Tensor | None = None,
        causal: bool = False,
        cache: KVCache | None = None,
        packing: Packing | None = None,
        source_packing: Packing | None = None,
    ) -> torch.Tensor:
        """x (B, Nq, d); source (B, Nk, d) or None; key_padding (B, Nk) bool, True = real key, covering
        every key attended (the cached ones too) -> (B, Nq, d). With `packing`, x (1, total, d) holds
        packed sequences and attention stays within each one: self-attention, or cross-attention to the
        packed `source` (1, total_source, d) cut by `source_packing` (sequence b attends source b)."""
        if packing is not None:
            return self._packed_attention(x, source, packing, source_packing, causal)
        batch, n_queries, d_model = x.shape
        q = self._heads(self.q_proj(x))  # (B, H, Nq, Dh)
        if cache is not None and source is not None and cache.length > 0:
            k, v = cache.filled()  # cross-attention keys, projected on the first step
        else:
            keys_from = x if source is None else source
            k, v = self._heads(self.k_proj(keys_from)), self._heads(self.v_proj(keys_from))  # (B, H, N, Dh)
            if cache is not None:
                k, v = cache.append(k, v)  # (B, H, Nk, Dh) views of the cache
        dropout_p = self.dropout_p if self.training else 0.0
        if causal and key_padding is not None and n_queries == k.size(2) > 1:  # a padded prefill, in one call
            out = causal_attention_with_key_padding(q, k, v, key_padding, dropout_p=dropout_p)  # (B, H, Nq, Dh)
        else:
            mask, is_causal = attention_mask(key_padding, n_queries, k.size(2), causal, x.device)
            out = attention(q, k, v, attn_mask=mask, is_causal=is_causal, dropout_p=dropout_p)  # (B, H, Nq, Dh)
        return self.out_proj(out.transpose(1, 2).reshape(batch, n_queries, d_model))

    def _packed_attention(self, x: torch.Tensor, source: torch.Tensor | None, packing: Packing,
                          source_packing: Packing | None, causal: bool) -> torch.Tensor:
        """x (1, total, d) -> (1, total, d), by `varlen_attention` on (total, H, Dh) views; keys and values
        from x itself, or from the packed `source` cut by `source_packing`."""
        heads = (self.n_heads, self.head_dim)
        keys_from, key_packing = (x, packing) if source is None else (source, source_packing)
        q = self.q_proj(x[0]).unflatten(-1, heads)
        k, v = (projection(keys_from[0]).unflatten(-1, heads) for projection in (self.k_proj, self.v_proj))
        out = varlen_attention(q, k, v, packing.cu_seqlens, key_packing.cu_seqlens, packing.max_seqlen,
                               key_packing.max_seqlen, is_causal=causal,
                               dropout_p=self.dropout_p if self.training else 0.0)  # (total, H, Dh)
        return self.out_proj(out.flatten(1))[None]


class FeedForward(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.up = nn.Linear(config.d_model, config.dim_feedforward)
        self.down = nn.Linear(config.dim_feedforward, config.d_model)
        self.activation = F.relu if config.activation == "relu" else F.gelu
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.dropout(self.activation(self.up(x))))  # (B, N, d)
