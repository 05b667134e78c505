"""All-gather attention: every rank gathers the whole K/V once, attends its queries to it, and in
the backward reduce-scatters the K/V gradients back to their owners. The simplest method and the
fewest messages; it holds the whole K/V on every rank, so it suits short sequences."""
import torch

from kernels.distributed.chunk_schedule import ChunkPlan, backward_from_source, forward_from_source
from kernels.distributed.communication import all_gather, reduce_scatter
from kernels.distributed.groups import GroupInfo
from kernels.distributed.layouts import rank_chunks
from kernels.distributed.ring import empty_state


class AllGatherAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, keep, plan: ChunkPlan, info: GroupInfo, layout: str):
        ks, vs = all_gather(k, info), all_gather(v, info)
        keeps = [None] * info.world_size if keep is None else all_gather(keep, info)
        out, lse = empty_state(q, v.size(3))
        for source in range(info.world_size):
            forward_from_source(plan, q, ks[source], vs[source], keeps[source],
                                rank_chunks(source, info.world_size, layout), out, lse)
        result = out.to(q.dtype)
        ctx.save_for_backward(q, k, v, keep, result, lse)
        ctx.plan, ctx.info, ctx.layout = plan, info, layout
        return result

    @staticmethod
    def backward(ctx, dout):
        q, k, v, keep, out, lse = ctx.saved_tensors
        plan, info = ctx.plan, ctx.info
        ks, vs = all_gather(k, info), all_gather(v, info)
        keeps = [None] * info.world_size if keep is None else all_gather(keep, info)
        dq = torch.zeros(q.shape, dtype=lse.dtype, device=q.device)
        dks, dvs = [], []
        for source in range(info.world_size):
            dk, dv = backward_from_source(plan, q, ks[source], vs[source], keeps[source],
                                          rank_chunks(source, info.world_size, ctx.layout), out, lse, dout, dq)
            dks.append(dk)
            dvs.append(dv)
        dk, dv = reduce_scatter(dks, info), reduce_scatter(dvs, info)
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), None, None, None, None
