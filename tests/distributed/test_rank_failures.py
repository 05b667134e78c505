"""Failure and imbalance: a rank that raises fails the whole group at once with its traceback (no
rank left hanging in a collective), and ranks with very different amounts of work finish."""
import time

import pytest
import torch

import kernels
from kernels import distributed as kd
from rank_pool import RankFailed, RankPool


def raise_on_rank_one(rank: int, world_size: int) -> None:
    q = torch.randn(1, 2, 8, 16)
    if rank == 1:
        raise ValueError("rank 1 fails on purpose")
    kd.context_parallel_attention(q, q, q, method="ring", is_causal=True)  # waits for rank 1's K/V forever


def test_a_raising_rank_fails_every_rank_fast():
    pool = RankPool(2)
    try:
        started = time.monotonic()
        with pytest.raises(RankFailed, match=r"(?s)rank 1 of 2 raised.*ValueError: rank 1 fails on purpose"):
            pool.run(raise_on_rank_one, timeout_s=120)
        assert time.monotonic() - started < 30, "the failure must not wait for the collective timeout"
        assert pool.closed and not any(process.is_alive() for process in pool._processes.processes)
    finally:
        pool.close(kill=True)


def uneven_work(rank: int, world_size: int, seed: int) -> None:
    """Contiguous causal: rank 0 computes one chunk pair, the last rank W; on top, the last half of
    the keys is padding, so whole blocks are skipped on some ranks, and the ranks start skewed."""
    generator = torch.Generator().manual_seed(seed)
    n = 4 * world_size
    q, k, v = (torch.randn(1, 2, n, 16, generator=generator) for _ in range(3))
    keep = torch.ones(1, n, dtype=torch.bool)
    keep[:, n // 2:] = False
    time.sleep(0.5 * rank)
    local = [kd.shard_sequence(t, layout="contiguous").requires_grad_() for t in (q, k, v)]
    out = kd.context_parallel_attention(*local, method="ring", layout="contiguous", is_causal=True,
                                        key_padding=kd.shard_sequence(keep, dim=1, layout="contiguous"))
    out.sum().backward()
    full = kd.unshard_sequence(out.detach(), layout="contiguous")
    expected = kernels.causal_attention_with_key_padding(q, k, v, keep)
    assert (full - expected).abs().max().item() < 1e-4
    assert torch.isfinite(local[1].grad).all() and local[1].grad[:, :, keep[0, kd.global_positions(
        4, rank, world_size, "contiguous")].logical_not()].eq(0).all(), "padded keys get no gradient"


@pytest.mark.parametrize("world_size", [2, 4])
def test_uneven_work_finishes(ranks, worker_seed, world_size):
    ranks.run(world_size, uneven_work, worker_seed, timeout_s=180)
