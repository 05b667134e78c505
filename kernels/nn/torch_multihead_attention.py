"""kernels.MultiheadAttention: torch.nn.MultiheadAttention with the attention itself fused in Triton."""
import torch
import torch.nn.functional as F
from torch import nn

import reference
from kernels.shared.backends import resolve_backend
from kernels.sdpa.functional import attention, attention_dropout_mask
from kernels.nn.torch_multihead_masks import (
    attn_mask_as_4d, causal_masked_out, combine_masks, pad_extra_keys, padding_mask_as_4d,
)


def _batched(query, key, value):
    """Unbatched (N, E) inputs -> (1, N, E) views, one per distinct tensor (self-attention stays recognisable)."""
    batched = {id(x): x.unsqueeze(0) for x in (query, key, value)}
    return batched[id(query)], batched[id(key)], batched[id(value)]


# The packed projection (B, N, 3, H, Dh), or (N, B, 3, H, Dh) seq-first -> (3, B, H, N, Dh), by seq_first.
_PACKED_TO_HEADS = {False: (2, 0, 3, 1, 4), True: (2, 1, 3, 0, 4)}


def _keep_fused_path(module: nn.Module, args: tuple) -> None:
    """A no-op forward pre-hook. nn.TransformerEncoderLayer (torch 2.13) skips its fused inference
    fast path, which reads `self_attn.in_proj_weight` and never calls `self_attn`, when any of its
    submodules has a hook: this one keeps every layer holding our module on the path that calls it.
    It sits on `out_proj`, which forward never calls (it applies out_proj's weights with F.linear, as
    torch's module does): a hook on the module itself would send every call through nn.Module's
    slower hook-running path."""


class MultiheadAttention(nn.MultiheadAttention):
    """A drop-in for torch.nn.MultiheadAttention whose attention runs in `kernels.attention`.

    torch's own constructor, parameters and state_dict keys (it subclasses torch's module and
    overrides only `forward`), so checkpoints load both ways; torch's forward signature, shapes
    (batch_first or not, unbatched (L, E)) and mask conventions: bool True = masked OUT, float added;
    key_padding_mask (B, S), attn_mask (L, S) or (B * num_heads, L, S). Differences, on purpose:

    - A query whose keys are all masked attends to nothing: weights 0 and attn_output equal to
      out_proj's bias, where torch returns NaN for both.
    - `is_causal` is torch's hint that attn_mask is causal. Given an attn_mask, the mask is trusted
      and the hint ignored; without one, a top-left causal mask is applied (torch raises instead).
    - need_weights=True (torch's default) returns the weights from a second, explicit pass over the
      projected q and k: O(B * H * L * S) memory, as in torch. The output still comes from the
      fused kernel; pass need_weights=False to skip the extra pass. In training with dropout the
      weights carry the kernel's own dropout mask, replayed.
    - NestedTensor inputs are rejected; torch's inference fast path for them is not used.

    Being a subclass, it passes isinstance checks for torch's class. nn.TransformerEncoderLayer's
    fast path does not check the class but would bypass `forward`; a no-op forward pre-hook on
    out_proj, added in __init__, keeps it off (see _keep_fused_path and kernels/nn/patching.py;
    replacing out_proj drops it).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.out_proj.register_forward_pre_hook(_keep_fused_path)

    @classmethod
    def from_torch(cls, module: nn.MultiheadAttention) -> "MultiheadAttention":
        """A copy of `module` (weights, device, dtype, training mode) on the fused kernel."""
        weight = module.out_proj.weight
        fused = cls(
            module.embed_dim, module.num_heads, dropout=module.dropout, bias=module.in_proj_bias is not None,
            add_bias_kv=module.bias_k is not None, add_zero_attn=module.add_zero_attn, kdim=module.kdim,
            vdim=module.vdim, batch_first=module.batch_first, device=weight.device, dtype=weight.dtype,
        )
        fused.load_state_dict(module.state_dict())
        return fused.train(module.training)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """query (L, B, E) or (B, L, E) if batch_first or (L, E) -> (attn_output like query,
        weights (B, L, S), or (B, H, L, S) if not average_attn_weights, or None)."""
        unbatched = self._check_inputs(query, key, value)
        if unbatched:
            query, key, value = _batched(query, key, value)
            key_padding_mask = None if key_padding_mask is None else key_padding_mask.unsqueeze(0)
        seq_first = not (self.batch_first or unbatched)
        q, k, v = self._project(query, key, value, seq_first)  # (B, H, L, Dh), (B, H, S', Dh), S' = S + extra keys
        batch, n_queries = q.shape[0], q.shape[2]
        mask = None
        if key_padding_mask is not None or attn_mask is not None or (is_causal and self._adds_keys()):
            mask, is_causal = self._mask(key_padding_mask, attn_mask, is_causal, batch, n_queries, k)
        dropout_p = self.dropout if self.training else 0.0

        weights = None
        if need_weights:
            weights, out = self._weights_and_output(q, k, v, mask, is_causal, dropout_p)
        else:
            out = attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal)
        # (B, L, E); F.linear, not the out_proj module, as torch's module (hooks on out_proj do not run in either)
        out_proj = self.out_proj
        out = F.linear(out.transpose(1, 2).reshape(batch, n_queries, self.embed_dim), out_proj.weight, out_proj.bias)

        if weights is not None and average_attn_weights:
            weights = weights.mean(dim=1)  # (B, L, S')
        if unbatched:
            return out.squeeze(0), None if weights is None else weights.squeeze(0)
        return (out.transpose(0, 1) if seq_first else out), weights

    def _check_inputs(self, query, key, value) -> bool:
        """Validate shapes; True when the inputs are unbatched (L, E). A valid call usually passes the
        first test alone (dense tensors of one rank, the right features, key and value of one length,
        one batch size); the checks that name the argument at fault run only when it fails."""
        if type(query) is type(key) is type(value) is torch.Tensor and not (
                query.is_nested or key.is_nested or value.is_nested):
            q, k, v = query.shape, key.shape, value.shape
            rank, batch_dim = len(q), 0 if self.batch_first else 1
            if (len(k) == rank == len(v) and (rank == 3 or rank == 2) and q[-1] == self.embed_dim
                    and k[-1] == self.kdim and v[-1] == self.vdim and k[:-1] == v[:-1]
                    and (rank == 2 or q[batch_dim] == k[batch_dim])):
                return rank == 2
        for name, x in (("query", query), ("key", key), ("value", value)):
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
            if x.is_nested:
                raise NotImplementedError(f"{name} is a NestedTensor: kernels.MultiheadAttention takes dense tensors")
        if query.dim() not in (2, 3) or not query.dim() == key.dim() == value.dim():
            raise ValueError(
                f"query, key and value must all be 3-D (batched) or all 2-D (unbatched), got shapes "
                f"{tuple(query.shape)}, {tuple(key.shape)} and {tuple(value.shape)}"
            )
        for name, x, dim in (("query", query, self.embed_dim), ("key", key, self.kdim), ("value", value, self.vdim)):
            if x.size(-1) != dim:
                raise ValueError(f"{name} must have {dim} features in its last dim, got shape {tuple(x.shape)}")
        if key.shape[:-1] != value.shape[:-1]:
            raise ValueError(
                f"key {tuple(key.shape)} and value {tuple(value.shape)} must match in all but the last dim"
            )
        batch_dim = 0 if self.batch_first else 1
        if query.dim() == 3 and query.size(batch_dim) != key.size(batch_dim):
            raise ValueError(f"query and key have different batch sizes: {tuple(query.shape)}, {tuple(key.shape)}")
        return query.dim() == 2

    def _adds_keys(self) -> int:
        """How many keys torch's options append: bias_k (add_bias_kv), a zero key (add_zero_attn)."""
        return (self.bias_k is not None) + self.add_zero_attn

    def _project(self, query, key, value, seq_first: bool = False):
        """Inputs (B, N, E), or (N, B, E) if seq_first -> per-head q, k, v as strided views (B, H, N, Dh),
        with torch's extra keys appended: bias_k/bias_v (add_bias_kv), then a zero key/value (add_zero_attn).

        Self-attention (one tensor as query, key and value) takes one matmul over the packed
        in_proj_weight, as torch's module does; each input is projected in its own layout (a seq-first
        input transposed first would be copied by the matmul), the views come after."""
        heads = (self.num_heads, self.head_dim)
        packed = self._qkv_same_embed_dim and self.bias_k is None and not self.add_zero_attn
        if packed and query is key and key is value:
            qkv = F.linear(query, self.in_proj_weight, self.in_proj_bias).view(*query.shape[:-1], 3, *heads)
            return qkv.permute(_PACKED_TO_HEADS[seq_first]).unbind(0)
        if self._qkv_same_embed_dim:
            weights = self.in_proj_weight.chunk(3)
        else:
            weights = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        biases = (None,) * 3 if self.in_proj_bias is None else self.in_proj_bias.chunk(3)
        q, k, v = (F.linear(x, w, b) for x, w, b in zip((query, key, value), weights, biases))
        if seq_first:
            q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)  # (B, N, E)
        batch = q.size(0)
        if self.bias_k is not None:
            k = torch.cat([k, self.bias_k.expand(batch, 1, -1)], dim=1)
            v = torch.cat([v, self.bias_v.expand(batch, 1, -1)], dim=1)
        if self.add_zero_attn:
            k = F.pad(k, (0, 0, 0, 1))
            v = F.pad(v, (0, 0, 0, 1))
        return tuple(x.unflatten(-1, heads).transpose(1, 2) for x in (q, k, v))

    def _mask(self, key_padding_mask, attn_mask, is_causal, batch, n_queries, k):
        """The kernel-convention mask (broadcastable to (B, H, L, S')) of torch's masks, and whether the
        kernel applies causality; `k` is the projected key (B, H, S', Dh), S' = S + extra keys."""
        n_extra = self._adds_keys()
        n_keys, masks = k.shape[2] - n_extra, []
        if key_padding_mask is not None:
            masks.append(padding_mask_as_4d(key_padding_mask, batch, n_keys))
        if attn_mask is not None:
            masks.append(attn_mask_as_4d(attn_mask, batch, self.num_heads, n_queries, n_keys))
            is_causal = False  # the mask is trusted over the is_causal hint
        elif is_causal and (masks or n_extra):
            masks.append(causal_masked_out(n_queries, n_keys, k.device))
            is_causal = False
        return combine_masks([pad_extra_keys(mask, n_extra) for mask in masks], k.dtype), is_causal

    def _weights_and_output(self, q, k, v, mask, is_causal, dropout_p):
        """The explicit pass for need_weights, and the output.

        The output still comes from the fused kernel when it runs (its dropout mask is replayed on
        the weights); on the torch/reference backends with dropout it is weights @ v, as in torch."""
        weights = reference.attention_weights(q, k, mask, is_causal)  # O(B * H * L * S) memory
        if dropout_p == 0.0:
            return weights, attention(q, k, v, attn_mask=mask, is_causal=is_causal)
        if resolve_backend(None, q.device) != "triton":
            weights = F.dropout(weights, p=dropout_p)
            return weights, weights.to(v.dtype) @ v
        generator_state = torch.get_rng_state()
        keep = attention_dropout_mask(q, k, dropout_p)
        torch.set_rng_state(generator_state)  # so the kernel call below draws the same seed
        out = attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal)
        return weights * keep / (1.0 - dropout_p), out
