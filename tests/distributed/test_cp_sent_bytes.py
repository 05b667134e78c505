"""The bytes each rank sends, counted by kernels.distributed, equal the benchmark's formulas
(benchmarks/context_parallel/cases.py) for every method, layout, world size and key padding."""
import pytest
import torch

import kernels
from benchmarks.context_parallel.cases import Case, expected_sent_bytes
from kernels import distributed as kd
from kernels.distributed.communication import count_sent_bytes


def check_sent_bytes(rank: int, world_size: int, seed: int) -> None:
    torch.manual_seed(seed)
    for method in kd.METHODS:
        for layout in kd.LAYOUTS:
            for padded in (False, True):
                case = Case(method, layout, world_size, seq_len=8 * world_size, heads=2 * world_size,
                            kv_heads=world_size, head_dim=8, padded=padded)
                n = case.seq_len // world_size
                q = torch.randn(1, case.heads, n, 8, requires_grad=True)
                k, v = (torch.randn(1, case.kv_heads, n, 8, requires_grad=True) for _ in range(2))
                keep = torch.ones(1, n, dtype=torch.bool) if padded else None
                with kernels.use_backend("torch"):  # the bytes do not depend on the chunk math
                    with count_sent_bytes() as forward:
                        out = kd.context_parallel_attention(q, k, v, method=method, layout=layout, is_causal=True,
                                                            enable_gqa=True, key_padding=keep)
                    with count_sent_bytes() as backward:
                        out.sum().backward()
                assert (forward.total, backward.total) == expected_sent_bytes(case, torch.float32), case


@pytest.mark.parametrize("world_size", [2, 4])
def test_sent_bytes_match_the_formulas(ranks, worker_seed, world_size):
    ranks.run(world_size, check_sent_bytes, worker_seed)
