"""Context parallelism: attention over sequences sharded across the ranks of a torch.distributed group.

    from kernels import distributed as kd
    q_local = kd.shard_sequence(q, dim=2, layout="zigzag")
    out_local = kd.context_parallel_attention(q_local, k_local, v_local, method="ring", layout="zigzag",
                                              is_causal=True)
    out = kd.unshard_sequence(out_local, dim=2, layout="zigzag")

See README.md in this folder for the methods and when the ring hides its communication.
"""
from kernels.distributed.api import METHODS, context_parallel_attention
from kernels.distributed.model import context_parallel
from kernels.distributed.layouts import LAYOUTS, global_positions, pad_for_sharding, shard_sequence, unshard_sequence

__all__ = ["context_parallel_attention", "context_parallel", "shard_sequence", "unshard_sequence", "pad_for_sharding",
           "global_positions", "METHODS", "LAYOUTS"]
