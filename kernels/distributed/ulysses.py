"""Ulysses (all-to-all) attention: trade sequence shards for head shards, attend locally, trade back.

An all-to-all turns each rank's (B, H, N/W, D) sequence shard into a (B, H/W, N, D) head shard of
the whole sequence (in global order, whatever the layout); one ordinary `kernels.attention` call
runs on it, and the inverse all-to-all returns the output to sequence shards. Autograd runs the
inverse all-to-all on the way back. Needs the query and key/value heads divisible by the group size.
"""
import torch

from kernels.distributed.communication import all_gather, all_to_all
from kernels.distributed.groups import GroupInfo
from kernels.distributed.layouts import gathered_in_sequence_order, local_in_layout_order
from kernels.sdpa.functional import attention, causal_attention_with_key_padding


def check_heads_divide(q_heads: int, kv_heads: int, world_size: int) -> None:
    for name, heads in (("query", q_heads), ("key/value", kv_heads)):
        if heads % world_size != 0:
            raise ValueError(
                f"method='ulysses' splits heads across the {world_size} ranks, but the {name} tensors have "
                f"{heads} heads, not a multiple of {world_size}: use method='ring' or 'allgather'"
            )


def sequence_to_heads(x: torch.Tensor, info: GroupInfo, layout: str) -> torch.Tensor:
    """(B, H, N_local, D) sequence shard -> (B, H/W, N, D) head shard, sequence in global order."""
    received = all_to_all(list(x.chunk(info.world_size, dim=1)), info)  # rank i's positions, my heads
    return gathered_in_sequence_order(received, 2, info.world_size, layout)


def heads_to_sequence(x: torch.Tensor, info: GroupInfo, layout: str) -> torch.Tensor:
    """The inverse: (B, H/W, N, D) head shard -> (B, H, N_local, D) sequence shard."""
    parts = [local_in_layout_order(x, 2, rank, info.world_size, layout) for rank in range(info.world_size)]
    return torch.cat(all_to_all(parts, info), dim=1)  # every head group of my positions


class _AllToAll(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, info: GroupInfo, layout: str, to_heads: bool):
        ctx.info, ctx.layout, ctx.to_heads = info, layout, to_heads
        return (sequence_to_heads if to_heads else heads_to_sequence)(x, info, layout)

    @staticmethod
    def backward(ctx, grad):
        inverse = heads_to_sequence if ctx.to_heads else sequence_to_heads
        return inverse(grad, ctx.info, ctx.layout), None, None, None


def ulysses_attention(q, k, v, keep, is_causal: bool, scale: float, enable_gqa: bool, info: GroupInfo,
                      layout: str) -> torch.Tensor:
    check_heads_divide(q.size(1), k.size(1), info.world_size)
    q, k, v = (_AllToAll.apply(t, info, layout, True) for t in (q, k, v))  # (B, H/W, N, D)
    if keep is not None:
        keep = gathered_in_sequence_order(all_gather(keep, info), 1, info.world_size, layout)  # (B, N)
    if is_causal and keep is not None:
        out = causal_attention_with_key_padding(q, k, v, keep, scale=scale, enable_gqa=enable_gqa)
    else:
        mask = None if keep is None else keep[:, None, None, :]
        out = attention(q, k, v, attn_mask=mask, is_causal=is_causal, scale=scale, enable_gqa=enable_gqa)
    return _AllToAll.apply(out, info, layout, False)
