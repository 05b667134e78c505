"""Ring attention: K/V blocks travel around the ring of ranks, one hop per step, each rank folding
the block it holds into its queries' running result while the next block is already in flight.

Forward, W steps: at step s rank r holds the K/V of rank (r - s) mod W; it posts the send of that
block to rank r+1 and the receive of the next one from rank r-1, computes, then waits.
Backward, W steps over the same blocks: each block travels with an accumulator of its dK/dV; a rank
adds its share and sends the accumulator on, so after W hops every block's gradient is back home.
The accumulator's send overlaps the next step's compute. Partials are merged in fp32 (fp64 for
fp64 inputs) by their log-sum-exp (merge.py).
"""
import torch

from kernels.distributed.chunk_schedule import ChunkPlan, backward_from_source, forward_from_source
from kernels.distributed.communication import RingExchange
from kernels.distributed.groups import GroupInfo
from kernels.distributed.layouts import rank_chunks
from kernels.distributed.merge import state_dtype


def key_block(k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor | None) -> list[torch.Tensor]:
    """What travels around the ring: K, V and, when there is one, the key-padding mask."""
    return [k, v] if keep is None else [k, v, keep]


def unpack(block: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    return block[0], block[1], block[2] if len(block) == 3 else None


def empty_state(q: torch.Tensor, head_dim_v: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The running (out, lse) before any key: zeros and -inf, in the state dtype."""
    dtype = state_dtype(q.dtype)
    out = torch.zeros(*q.shape[:3], head_dim_v, dtype=dtype, device=q.device)
    return out, torch.full(q.shape[:3], float("-inf"), dtype=dtype, device=q.device)


class RingAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, keep, plan: ChunkPlan, info: GroupInfo, layout: str):
        out, lse = empty_state(q, v.size(3))
        block = key_block(k, v, keep)
        for step in range(info.world_size):
            source = (info.rank - step) % info.world_size
            exchange = RingExchange(block, info) if step < info.world_size - 1 else None
            forward_from_source(plan, q, *unpack(block), rank_chunks(source, info.world_size, layout), out, lse)
            if exchange is not None:
                block = exchange.wait()
        result = out.to(q.dtype)
        ctx.save_for_backward(q, k, v, keep, result, lse)
        ctx.plan, ctx.info, ctx.layout = plan, info, layout
        return result

    @staticmethod
    def backward(ctx, dout):
        q, k, v, keep, out, lse = ctx.saved_tensors
        plan, info = ctx.plan, ctx.info
        dq = torch.zeros(q.shape, dtype=lse.dtype, device=q.device)
        block = key_block(k, v, keep)
        gradient_exchange = None
        for step in range(info.world_size):
            source = (info.rank - step) % info.world_size
            exchange = RingExchange(block, info) if step < info.world_size - 1 else None
            dk, dv = backward_from_source(plan, q, *unpack(block), rank_chunks(source, info.world_size, ctx.layout),
                                          out, lse, dout, dq)
            if gradient_exchange is not None:  # the accumulator of this block, from the previous rank
                dk_sum, dv_sum = gradient_exchange.wait()
                dk, dv = dk + dk_sum, dv + dv_sum
            gradient_exchange = RingExchange([dk, dv], info)
            if exchange is not None:
                block = exchange.wait()
        dk, dv = gradient_exchange.wait()  # this rank's own block, home after W hops
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), None, None, None, None
