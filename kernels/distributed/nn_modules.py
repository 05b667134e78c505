"""Sharded forwards for the `kernels.nn` drop-ins, so that a model built from torch modules and patched
with `kernels.replace_attention` (an `nn.TransformerEncoder`, the course's encoder) runs under
`context_parallel` too.

Each forward sees this rank's shard of the sequence (dim 1, or dim 0 for torch's sequence-first
layout) and does what the module does on the whole sequence:
- `kernels.MultiheadAttention`: self-attention only (query, key and value one tensor, as
  `nn.TransformerEncoderLayer` calls it), `need_weights=False`, a key-padding mask (bool True = pad,
  or the float 0 / -inf form `nn.TransformerEncoder` turns it into) and causality (`is_causal=True`,
  with or without the square causal mask torch passes beside it);
- the course's `kernels.MultiHeadAttention`: self-attention with no mask or a key-padding mask
  broadcast over heads and queries (`mask` (B, 1, 1, N_local), 0 = masked out);
- `kernels.PositionalEncoder` and `kernels.SinusoidalEmbedding`: each position gets its global index.
Anything else (cross-attention, a general attention mask, attention weights) raises a ValueError
naming what to change: a shard cannot compute it without the whole sequence.
"""
import torch

from kernels.distributed.api import context_parallel_attention
from kernels.distributed.groups import GroupInfo
from kernels.distributed.layouts import global_positions
from kernels.nn.course_multi_head_attention import MultiHeadAttention as CourseMultiHeadAttention
from kernels.nn.positional import PositionalEncoder, SinusoidalEmbedding
from kernels.nn.torch_multihead_attention import MultiheadAttention


def _check_self_attention(module_name: str, query, key, value) -> None:
    if not (query is key and key is value):
        raise ValueError(f"context_parallel runs {module_name} as self-attention over the sharded sequence: "
                         "query, key and value must be one tensor (cross-attention is not sharded)")


def _keep_from_torch_padding(key_padding_mask: torch.Tensor, batch: int, length: int) -> torch.Tensor:
    """torch's key_padding_mask (B, N_local), bool True = pad or float 0 / -inf, as a (B, N_local) keep
    mask (True = a real key). A float mask with any other value is a bias no shard can apply: refused
    (checking its values reads them back to the host once per call)."""
    if key_padding_mask.shape != (batch, length):
        raise ValueError(f"key_padding_mask must have shape (batch={batch}, local_len={length}), "
                         f"got {tuple(key_padding_mask.shape)}")
    if key_padding_mask.dtype == torch.bool:
        return ~key_padding_mask
    if not key_padding_mask.is_floating_point():
        raise TypeError(f"key_padding_mask must be bool or floating point, got dtype {key_padding_mask.dtype}")
    keep = key_padding_mask == 0
    if not bool((keep | (key_padding_mask == float("-inf"))).all()):
        raise ValueError("context_parallel takes a float key_padding_mask only as 0 (attend) / -inf (pad): "
                         "other values are a bias over keys; pass a bool mask")
    return keep


def torch_multihead_attention_forward(module: MultiheadAttention, info: GroupInfo, method: str, layout: str):
    def forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        _check_self_attention("kernels.MultiheadAttention", query, key, value)
        if need_weights:
            raise ValueError("context_parallel does not return attention weights: call with need_weights=False "
                             "(nn.TransformerEncoderLayer does)")
        if attn_mask is not None and not is_causal:
            raise ValueError("context_parallel takes causality as is_causal=True, not a general attn_mask: a "
                             "shard cannot apply a mask over the whole sequence")
        if query.dim() != 3:
            raise ValueError(f"context_parallel needs batched input (3-D), got shape {tuple(query.shape)}")
        if module.bias_k is not None or module.add_zero_attn:
            raise ValueError("context_parallel does not shard add_bias_kv / add_zero_attn (their extra keys "
                             "belong to no rank)")
        x = query if module.batch_first else query.transpose(0, 1)  # (B, N_local, E)
        batch, length, _ = x.shape
        q, k, v = module._project(x, x, x)  # (B, H, N_local, Dh)
        keep = None if key_padding_mask is None else _keep_from_torch_padding(key_padding_mask, batch, length)
        out = context_parallel_attention(q, k, v, group=info.group, method=method, layout=layout,
                                         is_causal=is_causal, key_padding=keep,
                                         dropout_p=module.dropout if module.training else 0.0)
        out = module.out_proj(out.transpose(1, 2).reshape(batch, length, module.embed_dim))
        return (out if module.batch_first else out.transpose(0, 1)), None
    return forward


def course_multi_head_attention_forward(module: CourseMultiHeadAttention, info: GroupInfo, method: str,
                                        layout: str):
    def forward(query, key, value, mask=None):
        _check_self_attention("the course's kernels.MultiHeadAttention", query, key, value)
        batch, length = query.size(0), query.size(1)
        keep = None
        if mask is not None:
            if mask.dim() != 4 or mask.size(1) != 1 or mask.size(2) != 1 or mask.size(3) != length:
                raise ValueError(f"context_parallel takes the course's mask only as key padding (batch, 1, 1, "
                                 f"local_len={length}), got shape {tuple(mask.shape)}")
            keep = (mask != 0).reshape(mask.size(0), length).expand(batch, length)
        heads = (module.split_heads(projection(query), batch)
                 for projection in (module.query_linear, module.key_linear, module.value_linear))
        out = context_parallel_attention(*heads, group=info.group, method=method, layout=layout, key_padding=keep)
        return module.output_linear(out.transpose(1, 2).reshape(batch, length, module.d_model))
    return forward


def _global_position_ids(x: torch.Tensor, info: GroupInfo, layout: str, position_offset: int,
                         position_ids: torch.Tensor | None) -> torch.Tensor:
    if position_offset or position_ids is not None:
        raise ValueError("context_parallel gives every position its global index: pass neither position_offset "
                         "nor position_ids")
    return global_positions(x.size(1), info.rank, info.world_size, layout, x.device)[None]


def positional_encoder_forward(module: PositionalEncoder, info: GroupInfo, method: str, layout: str):
    encode = type(module).forward

    def forward(x, *, position_offset=0, position_ids=None):
        return encode(module, x, position_ids=_global_position_ids(x, info, layout, position_offset, position_ids))
    return forward


def sinusoidal_embedding_forward(module: SinusoidalEmbedding, info: GroupInfo, method: str, layout: str):
    embed = type(module).forward

    def forward(token_ids, *, position_offset=0, position_ids=None):
        positions = _global_position_ids(token_ids, info, layout, position_offset, position_ids)
        return embed(module, token_ids, position_ids=positions)
    return forward


SHARDED_FORWARDS = {
    MultiheadAttention: torch_multihead_attention_forward,
    CourseMultiHeadAttention: course_multi_head_attention_forward,
    PositionalEncoder: positional_encoder_forward,
    SinusoidalEmbedding: sinusoidal_embedding_forward,
}
