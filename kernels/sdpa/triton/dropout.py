"""The attention dropout mask as a tensor, for debugging and for exact tests.

The fused kernels never store their dropout mask; they regenerate it from a Philox seed. This
kernel writes out the very same bits (it calls the same `dropout_keep`), so a test or a user can
rebuild a fused call's dropout exactly in plain PyTorch.
"""
import torch
import triton
import triton.language as tl

from kernels.sdpa.triton.common import dropout_keep
from kernels.shared.dropout import Dropout


@triton.jit(do_not_specialize=["dropout_seed"])
def _dropout_mask_kernel(keep_ptr, n_queries, n_keys, dropout_p, dropout_seed,
                         BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    batch_head = tl.program_id(1)
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ptrs = keep_ptr + (batch_head.to(tl.int64) * n_queries + offs_m[:, None]) * n_keys
    for start_n in range(0, n_keys, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        keep = dropout_keep(dropout_seed, batch_head, offs_m, offs_n, dropout_p)
        tl.store(row_ptrs + offs_n[None, :], keep.to(tl.uint8),
                 mask=(offs_m[:, None] < n_queries) & (offs_n[None, :] < n_keys))


def dropout_keep_mask(batch: int, heads: int, n_queries: int, n_keys: int, dropout: Dropout,
                           device: torch.device | str) -> torch.Tensor:
    """(B, Hq, Nq, Nk) bool, True where the fused attention with this `dropout` keeps a weight."""
    keep = torch.empty(batch, heads, n_queries, n_keys, dtype=torch.uint8, device=device)
    if keep.numel():
        block_m, block_n = 16, 64
        _dropout_mask_kernel[(triton.cdiv(n_queries, block_m), batch * heads)](
            keep, n_queries, n_keys, dropout.p, dropout.seed, BLOCK_M=block_m, BLOCK_N=block_n)
    return keep.view(torch.bool)
