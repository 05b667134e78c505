"""`context_parallel_attention`: attention over a sequence sharded across the ranks of a process group."""
import math

import torch
import torch.distributed as dist

from kernels.distributed.allgather import AllGatherAttention
from kernels.distributed.chunk_attention import chunk_backend
from kernels.distributed.chunk_schedule import ChunkPlan
from kernels.distributed.groups import group_info
from kernels.distributed.layouts import check_layout, local_chunk_length, rank_chunks
from kernels.distributed.ring import RingAttention
from kernels.distributed.ulysses import ulysses_attention
from kernels.sdpa.validation import check_attention_inputs, check_attention_kernel_limits, check_key_padding

METHODS = ("ring", "ulysses", "allgather")


def context_parallel_attention(
    q_local: torch.Tensor,
    k_local: torch.Tensor,
    v_local: torch.Tensor,
    group: "dist.ProcessGroup | None" = None,
    method: str = "ring",
    layout: str = "zigzag",
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
    key_padding: torch.Tensor | None = None,
    window: int | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Self-attention over the whole sequence, each rank holding its shard (`shard_sequence`).

    q_local (B, Hq, N_local, D), k_local / v_local (B, Hkv, N_local, D|Dv): this rank's positions in
    `layout` ("contiguous" or "zigzag"); every rank of `group` calls with the same shapes and flags.
    key_padding: this rank's shard (B, N_local) of a bool (B, N) mask, True = a real key.
    Returns this rank's (B, Hq, N_local, Dv) rows of `kernels.attention` on the full sequence
    (causal: top-left aligned over global positions, as on one device); differentiable.
    `method`: "ring" (K/V passed around the ring, overlapped with compute), "ulysses" (all-to-all to
    head shards; heads must divide by the group size) or "allgather" (gather K/V once).
    A sequence length the layout cannot split: see `pad_for_sharding`.
    Not supported, with a clear error: `window` and dropout (the single-device dropout mask is
    drawn per call over the whole score matrix, which no shard can reproduce).
    """
    check_attention_inputs(q_local, k_local, v_local, None, dropout_p, is_causal, scale, enable_gqa)
    if q_local.dim() != 4:
        raise ValueError(f"q_local must have rank 4 (batch, heads, seq, head_dim), got shape {tuple(q_local.shape)}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    check_layout(layout)
    if window is not None:
        raise ValueError(f"window={window!r}: sliding-window attention is not supported by context parallelism "
                         "yet; pass window=None")
    if dropout_p != 0.0:
        raise ValueError(f"dropout_p={dropout_p!r}: context-parallel attention does not support dropout (its mask "
                         "could not match the single-device one); pass dropout_p=0.0")
    if q_local.size(2) != k_local.size(2):
        raise ValueError(f"q_local and k_local must hold the same positions (self-attention over one sharded "
                         f"sequence), got {q_local.size(2)} and {k_local.size(2)} positions")
    if key_padding is not None:
        check_key_padding(key_padding, q_local, k_local)
    chunk_length = local_chunk_length(q_local.size(2), layout)
    info = group_info(group)
    scale = 1.0 / math.sqrt(q_local.size(-1)) if scale is None else float(scale)
    backend = chunk_backend(q_local.device)
    if backend == "triton":
        check_attention_kernel_limits(q_local, v_local)

    if method == "ulysses":
        return ulysses_attention(q_local, k_local, v_local, key_padding, is_causal, scale, enable_gqa, info, layout)
    plan = ChunkPlan(rank_chunks(info.rank, info.world_size, layout), chunk_length, is_causal, scale, backend)
    function = RingAttention if method == "ring" else AllGatherAttention
    return function.apply(q_local, k_local, v_local, key_padding, plan, info, layout)
