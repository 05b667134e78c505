"""context_parallel_attention, forward and the three gradients, on 2 (and a few on 4) gloo ranks
running the Triton kernels in the interpreter, against single-device kernels.attention and float64."""
import pytest

from cp_cases import feature_cases, run_cases


@pytest.mark.parametrize("layout", ["contiguous", "zigzag"])
@pytest.mark.parametrize("method", ["ring", "allgather", "ulysses"])
def test_every_feature_on_two_ranks(ranks, worker_seed, method, layout):
    ranks.run(2, run_cases, worker_seed, feature_cases(method, layout), timeout_s=300)
