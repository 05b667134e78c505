"""Packed variable-length sequences in the attention kernels: their VARLEN constexpr mode.

Packed inputs (FlashAttention's varlen layout) are q (total_q, Hq, D), k/v (total_k, Hkv, D|Dv) and
int32 offsets cu_seqlens_q/k (B + 1,): sequence b owns rows cu_seqlens[b]:cu_seqlens[b + 1]. The
launchers hand them to the dense kernels as (B, H, total, D) views whose batch stride is 0 (every
batch element is the whole packed tensor); with VARLEN set, a program reads its sequence's first
row and length from the offsets (`sequence_rows`) and works on that sequence's rows only, with the
length in place of the kernel's n_queries / n_keys. So the grid is sized from max_seqlen_q/k (never
from the offsets' values: no host synchronisation), and a program whose block lies past its
sequence's end returns at once. Rows of the neighbouring sequences are never read: every load is
bounded by the sequence's length (EVEN_M / EVEN_N are off in this mode).

The per-row statistics (the forward's log-sum-exp, the backward's delta) are laid out (Hq, total_q)
in this mode, one contiguous row of every packed query per head; the kernels address them by a
(batch, head) stride pair plus the sequence's first row, which is (B, Hq, Nq) for dense inputs.
"""
from dataclasses import dataclass

import torch
import triton
import triton.language as tl


@dataclass(frozen=True)
class PackedSequences:
    """The offsets and length bounds of a packed batch, as the launchers take them."""
    cu_seqlens_q: torch.Tensor
    cu_seqlens_k: torch.Tensor
    max_seqlen_q: int
    max_seqlen_k: int

    @property
    def batch(self) -> int:
        return self.cu_seqlens_q.size(0) - 1


def sequence_pointer_args(sequences: PackedSequences | None, placeholder: torch.Tensor) -> tuple:
    """The kernels' (cu_seqlens_q_ptr, cu_seqlens_k_ptr) arguments: `placeholder` twice (never read)
    for dense inputs."""
    if sequences is None:
        return placeholder, placeholder
    return sequences.cu_seqlens_q, sequences.cu_seqlens_k


def batched_view(packed: torch.Tensor, batch: int) -> torch.Tensor:
    """(total, H, D) packed rows as the (batch, H, total, D) view the kernels take in VARLEN mode:
    every batch element is the whole tensor (batch stride 0); the kernel picks its sequence's rows."""
    return packed.transpose(0, 1).unsqueeze(0).expand(batch, -1, -1, -1)


@triton.jit
def sequence_rows(cu_seqlens_ptr, batch, n_rows, VARLEN: tl.constexpr):
    """(first row, row count) of sequence `batch` in the packed rows; (0, n_rows) for dense inputs,
    whose batch element starts at its batch stride."""
    if VARLEN:
        start = tl.load(cu_seqlens_ptr + batch)
        return start.to(tl.int64), tl.load(cu_seqlens_ptr + batch + 1) - start
    else:
        return 0, n_rows
