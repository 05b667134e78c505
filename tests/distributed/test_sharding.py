"""shard_sequence / unshard_sequence: which chunks each rank holds, the exact round trip, global
positions, and a clear error for lengths that do not split."""
import pytest
import torch

from kernels import distributed as kd


def check_shard_and_unshard(rank: int, world_size: int, seed: int, layout: str) -> None:
    torch.manual_seed(seed)
    chunk = 3
    n_chunks = world_size if layout == "contiguous" else 2 * world_size
    x = torch.randn(2, 3, chunk * n_chunks, 5)
    local = kd.shard_sequence(x, dim=2, layout=layout)
    held = [rank] if layout == "contiguous" else [rank, 2 * world_size - 1 - rank]
    expected = torch.cat([x[:, :, c * chunk:(c + 1) * chunk] for c in held], dim=2)
    assert torch.equal(local, expected), f"rank {rank} holds the wrong chunks"
    positions = kd.global_positions(local.size(2), rank, world_size, layout)
    assert torch.equal(x[:, :, positions], local)
    assert torch.equal(kd.unshard_sequence(local, dim=2, layout=layout), x)
    # another dim, negative index
    tokens = torch.arange(2 * n_chunks * chunk).view(2, -1)
    assert torch.equal(kd.unshard_sequence(kd.shard_sequence(tokens, dim=-1, layout=layout), dim=-1, layout=layout),
                       tokens)
    with pytest.raises(ValueError, match=f"x.size\\(2\\).*length {chunk * n_chunks + 1} does not split into the "
                                         f"{n_chunks} equal chunks"):
        kd.shard_sequence(torch.zeros(1, 1, chunk * n_chunks + 1, 1), dim=2, layout=layout)
    odd = torch.randn(2, chunk * n_chunks - 1, 3)  # n_chunks is even: an odd length never splits
    padded, real = kd.pad_for_sharding(odd, dim=1, layout=layout)
    assert padded.shape == (2, chunk * n_chunks, 3) and torch.equal(padded[:, :-1], odd) and padded[:, -1].eq(0).all()
    assert torch.equal(real, torch.arange(chunk * n_chunks) < chunk * n_chunks - 1)
    assert kd.shard_sequence(padded, dim=1, layout=layout).size(1) == chunk * n_chunks // world_size
    with pytest.raises(ValueError, match="layout must be one of"):
        kd.shard_sequence(x, dim=2, layout="striped")
    with pytest.raises(ValueError, match="dim 4 is out of range"):
        kd.shard_sequence(x, dim=4, layout=layout)


@pytest.mark.parametrize("layout", ["contiguous", "zigzag"])
@pytest.mark.parametrize("world_size", [2, 4])
def test_shard_and_unshard(ranks, worker_seed, world_size, layout):
    ranks.run(world_size, check_shard_and_unshard, worker_seed, layout)


def test_sharding_needs_an_initialised_process_group():
    with pytest.raises(RuntimeError, match="init_process_group"):
        kd.shard_sequence(torch.zeros(1, 1, 4, 1), dim=2)
