"""context_parallel_attention, forward and the three gradients, on 2 (and a few on 4) gloo ranks
running the Triton kernels in the interpreter, against single-device kernels.attention and float64."""
import pytest
import torch

from cp_cases import Case, feature_cases, run_cases


@pytest.mark.parametrize("layout", ["contiguous", "zigzag"])
@pytest.mark.parametrize("method", ["ring", "allgather", "ulysses"])
def test_every_feature_on_two_ranks(ranks, worker_seed, method, layout):
    ranks.run(2, run_cases, worker_seed, feature_cases(method, layout), timeout_s=300)


def test_other_dtypes_and_the_torch_fallback(ranks, worker_seed):
    """fp64 end to end within 1e-6 of the reference (the merge loses nothing), fp16 by the pass rule,
    the plain PyTorch chunk math that CPU runs without the interpreter use, and lengths that need
    pad_for_sharding."""
    cases = [
        Case("ring", "zigzag", True, True, True, dtype=torch.float64),
        Case("allgather", "contiguous", True, False, True, dtype=torch.float64),
        Case("ulysses", "zigzag", True, True, False, dtype=torch.float64),
        Case("ring", "zigzag", True, False, True, dtype=torch.float16),
        Case("ring", "zigzag", True, True, True, backend="torch"),
        Case("allgather", "zigzag", False, True, True, backend="torch"),
        Case("ring", "zigzag", True, True, False, odd_length=True),
        Case("ulysses", "contiguous", False, False, True, odd_length=True),
    ]
    ranks.run(2, run_cases, worker_seed, cases, timeout_s=300)


def test_four_ranks(ranks, worker_seed):
    """A representative few on 4 ranks (each costs 4 processes on the CPU): the longer ring, both
    layouts, every method, causal with GQA and padding."""
    cases = [
        Case("ring", "zigzag", True, True, True, chunk_length=3),
        Case("ring", "contiguous", True, False, True, chunk_length=3),
        Case("allgather", "zigzag", True, True, False, chunk_length=3),
        Case("ulysses", "contiguous", True, True, True, chunk_length=3),
    ]
    ranks.run(4, run_cases, worker_seed, cases, timeout_s=400)
