"""The `ranks` fixture: a RankPool per world size, kept across tests, rebuilt after a failure."""
import pytest
import torch

from rank_pool import RankPool

_pools: dict[int, RankPool] = {}


class Ranks:
    """`ranks.run(world_size, job, *args)`: run `job(rank, world_size, *args)` on a pool of that size."""

    def run(self, world_size: int, job, *args, timeout_s: float = 120) -> None:
        pool = _pools.get(world_size)
        if pool is None or pool.closed:
            pool = _pools[world_size] = RankPool(world_size)
        pool.run(job, *args, timeout_s=timeout_s)


@pytest.fixture(scope="session")
def ranks():
    yield Ranks()
    for pool in _pools.values():
        pool.close()


@pytest.fixture
def worker_seed() -> int:
    """The workers' torch seed, drawn from this test's seed (printed by tests/conftest.py), so every
    rank builds the same full inputs."""
    seed = int(torch.randint(2**31 - 1, ()).item())
    print(f"worker seed {seed}")
    return seed
