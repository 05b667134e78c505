"""`context_parallel(model)`: run a model with its sequence sharded across ranks.

Inside the context every rank passes its shard of the token ids (`shard_sequence(ids, dim=1)`)
and of the attention mask; the model's self-attention runs `context_parallel_attention` over the
whole sequence, and the embedding puts each token at its global position (with a padding mask,
positions count real tokens over the whole sequence, as on one device). Everything else in the
model is per token, so it runs on the shard unchanged. Parameter gradients are this rank's share:
all-reduce them (DistributedDataParallel over the same ranks does) to get the full-sequence ones.

Models built from `kernels.models` (Attention, Embedding) and models of torch modules patched with
`kernels.replace_attention` (kernels.MultiheadAttention, the course's kernels.MultiHeadAttention,
kernels.PositionalEncoder / SinusoidalEmbedding: see nn_modules.py) are covered. A module that would
silently see only its shard (torch's own nn.MultiheadAttention, the course's reference modules) is
refused.
"""
import contextlib
from collections.abc import Iterator

import torch.distributed as dist
from torch import nn

import reference
from kernels.distributed.api import context_parallel_attention
from kernels.distributed.communication import all_gather
from kernels.distributed.groups import GroupInfo, group_info
from kernels.distributed.layouts import (
    check_layout, gathered_in_sequence_order, global_positions, local_in_layout_order,
)
from kernels.distributed.nn_modules import SHARDED_FORWARDS
from kernels.models.attention import Attention
from kernels.models.embedding import Embedding
from kernels.models.inputs import positions_from_padding


@contextlib.contextmanager
def context_parallel(model: nn.Module, group: "dist.ProcessGroup | None" = None, method: str = "ring",
                     layout: str = "zigzag") -> Iterator[nn.Module]:
    """Patch `model`'s self-attention and position modules for sharded sequences, restored on exit.
    Works for models built from kernels.models' Attention and Embedding (DecoderOnlyLM, an
    EncoderClassifier's encoder) and for torch models after `kernels.replace_attention(model)`;
    cross-attention and KV caches are refused inside the context."""
    check_layout(layout)
    info = group_info(group)
    # A kernels.models Embedding hands its SinusoidalEmbedding the global positions itself.
    inside_embeddings = {id(inner) for outer in model.modules() if isinstance(outer, Embedding)
                         for inner in outer.modules() if inner is not outer}
    sharded = [(module, forward) for module in model.modules() if id(module) not in inside_embeddings
               and (forward := _sharded_forward(module, info, method, layout)) is not None]
    if not sharded:
        raise ValueError(f"{type(model).__name__} has no attention or position module to shard (kernels.models "
                         "Attention / Embedding, or the kernels.nn modules replace_attention installs)")
    for module, forward in sharded:
        module.forward = forward
    try:
        yield model
    finally:
        for module, _ in sharded:
            del module.forward  # back to the class's forward


# Modules that would run on their shard alone, unaware of the rest of the sequence: a wrong answer, refused.
_UNSHARDABLE = {
    nn.MultiheadAttention: "torch's nn.MultiheadAttention: call kernels.replace_attention(model) first",
    reference.MultiHeadAttention: "the course's reference MultiHeadAttention: call kernels.replace_attention(model) "
                                  "first",
    reference.PositionalEncoder: "the course's reference PositionalEncoder (it would number each shard from 0): "
                                 "use kernels.PositionalEncoder",
}


def _sharded_forward(module: nn.Module, info: GroupInfo, method: str, layout: str):
    """The forward `module` runs under the context, or None when it works per token as it is."""
    if isinstance(module, Attention):
        return _sharded_attention_forward(module, info, method, layout)
    if isinstance(module, Embedding):
        return _sharded_embedding_forward(module, info, layout)
    make = SHARDED_FORWARDS.get(type(module))
    if make is not None:
        return make(module, info, method, layout)
    refused = _UNSHARDABLE.get(type(module))
    if refused is not None:
        raise ValueError(f"context_parallel cannot shard {refused}")
    return None


def _sharded_attention_forward(module: Attention, info: GroupInfo, method: str, layout: str):
    def forward(x, source=None, *, key_padding=None, causal=False, cache=None, packing=None):
        if source is not None or cache is not None or packing is not None:
            raise ValueError("context_parallel supports self-attention without a KV cache over padded batches "
                             "(training and full-sequence scoring), not cross-attention, cached decoding or "
                             "packed batches")
        q, k, v = (module._heads(projection(x)) for projection in (module.q_proj, module.k_proj, module.v_proj))
        out = context_parallel_attention(  # (B, H, N_local, Dh)
            q, k, v, group=info.group, method=method, layout=layout, is_causal=causal, key_padding=key_padding,
            dropout_p=module.dropout_p if module.training else 0.0)
        return module.out_proj(out.transpose(1, 2).flatten(2))
    return forward


def _sharded_embedding_forward(module: Embedding, info: GroupInfo, layout: str):
    def forward(ids, padding=None, past_length=0, *, positions=None):
        if past_length:
            raise ValueError("context_parallel does not run cached decoding steps (past_length > 0)")
        if positions is not None:
            raise ValueError("context_parallel numbers positions itself (globally): it does not take a packed "
                             "batch's positions")
        if padding is None:
            positions = global_positions(ids.size(1), info.rank, info.world_size, layout, ids.device)[None]
        else:  # real tokens counted over the whole sequence
            full_padding = gathered_in_sequence_order(all_gather(padding, info), 1, info.world_size, layout)
            full_positions = positions_from_padding(full_padding, full_padding.size(1))
            positions = local_in_layout_order(full_positions, 1, info.rank, info.world_size, layout)
        return module.tokens(ids, position_ids=positions)
    return forward
