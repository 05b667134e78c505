"""The local queries against one source rank's keys: which chunk pairs to compute, and folding
their results into the running state. Shared by the ring (one source per step) and the all-gather
method (every source at once); the causal skipping of chunk_attention.py happens here, so a step
whose keys all lie above the diagonal computes nothing."""
from dataclasses import dataclass

import torch

from kernels.distributed.chunk_attention import DIAGONAL, FULL, SKIPPED, chunk_backward, chunk_forward, chunk_relation
from kernels.distributed.merge import merge_into


@dataclass(frozen=True)
class ChunkPlan:
    """What every call shares: the local queries' chunk ids and the attention flags."""

    query_chunks: tuple[int, ...]
    chunk_length: int
    is_causal: bool
    scale: float
    backend: str

    def rows(self, slot: int) -> slice:
        return slice(slot * self.chunk_length, (slot + 1) * self.chunk_length)

    def pairs(self, key_chunks: tuple[int, ...]):
        """(query rows, key rows or None for the whole source, diagonal?) of every pair to compute.
        A query chunk that sees every key chunk of the source in full takes them in one call."""
        whole = slice(None)
        for q_slot, q_chunk in enumerate(self.query_chunks):
            relations = [chunk_relation(q_chunk, k_chunk, self.is_causal) for k_chunk in key_chunks]
            if all(relation == FULL for relation in relations):
                yield self.rows(q_slot), whole, False
                continue
            for k_slot, relation in enumerate(relations):
                if relation != SKIPPED:
                    yield self.rows(q_slot), self.rows(k_slot), relation == DIAGONAL


def _keys(k, v, keep, key_rows: slice):
    return k[:, :, key_rows], v[:, :, key_rows], None if keep is None else keep[:, key_rows]


def forward_from_source(plan: ChunkPlan, q, k, v, keep, key_chunks, out, lse) -> None:
    """Fold the attention of the local queries q over one source's k, v (its chunks `key_chunks`,
    keep its (B, Nk) key mask or None) into the running (out, lse), in place."""
    for query_rows, key_rows, diagonal in plan.pairs(key_chunks):
        block_out, block_lse = chunk_forward(q[:, :, query_rows], *_keys(k, v, keep, key_rows), diagonal,
                                             plan.scale, plan.backend)
        merge_into(out[:, :, query_rows], lse[:, :, query_rows], block_out, block_lse)


def backward_from_source(plan: ChunkPlan, q, k, v, keep, key_chunks, out, lse, dout, dq):
    """Add this source's share to dq (in place) and return its (dk, dv), all in the state dtype."""
    dk = torch.zeros(k.shape, dtype=dq.dtype, device=k.device)
    dv = torch.zeros(v.shape, dtype=dq.dtype, device=v.device)
    for query_rows, key_rows, diagonal in plan.pairs(key_chunks):
        chunk_k, chunk_v, chunk_keep = _keys(k, v, keep, key_rows)
        chunk_dq, chunk_dk, chunk_dv = chunk_backward(
            q[:, :, query_rows], chunk_k, chunk_v, out[:, :, query_rows], lse[:, :, query_rows],
            dout[:, :, query_rows], chunk_keep, diagonal, plan.scale, plan.backend)
        dq[:, :, query_rows] += chunk_dq
        dk[:, :, key_rows] += chunk_dk
        dv[:, :, key_rows] += chunk_dv
    return dk, dv
