"""Bad input to context_parallel_attention gets a clear error naming the argument, before any
communication (so no rank is left waiting on a peer that raised)."""
import pytest
import torch

from kernels import distributed as kd


def qkv(n=8, heads=2, kv_heads=2, dtype=torch.float32):
    return (torch.randn(1, heads, n, 16, dtype=dtype), torch.randn(1, kv_heads, n, 16, dtype=dtype),
            torch.randn(1, kv_heads, n, 16, dtype=dtype))


@pytest.mark.parametrize("options, message", [
    (dict(method="striped"), "method must be one of"),
    (dict(layout="diagonal"), "layout must be one of"),
    (dict(window=4), "window=4: sliding-window attention is not supported"),
    (dict(dropout_p=0.1), "dropout_p=0.1: context-parallel attention does not support dropout"),
    (dict(dropout_p=1.5), "dropout_p must be a float in"),
    (dict(scale=float("nan")), "scale must be None or a finite float"),
    (dict(key_padding=torch.ones(1, 8)), "key_padding must be a bool tensor"),
    (dict(key_padding=torch.ones(1, 7, dtype=torch.bool)), "key_padding must have shape"),
])
def test_bad_options(options, message):
    with pytest.raises((ValueError, TypeError), match=message):
        kd.context_parallel_attention(*qkv(), **options)


def test_bad_tensors():
    q, k, v = qkv()
    with pytest.raises(ValueError, match="pass enable_gqa=True"):
        kd.context_parallel_attention(*qkv(heads=4, kv_heads=2))
    with pytest.raises(ValueError, match="q_local must have rank 4"):
        kd.context_parallel_attention(q[0], k[0], v[0])
    with pytest.raises(ValueError, match="q_local and k_local must hold the same positions"):
        kd.context_parallel_attention(q, k[:, :, :4], v[:, :, :4])
    with pytest.raises(ValueError, match="local sequence length must be a multiple of 2 in the 'zigzag' layout"):
        kd.context_parallel_attention(*qkv(n=7), layout="zigzag")
    with pytest.raises(TypeError, match="share one dtype"):
        kd.context_parallel_attention(q, k.double(), v)


def test_needs_an_initialised_process_group():
    with pytest.raises(RuntimeError, match="call torch.distributed.init_process_group first"):
        kd.context_parallel_attention(*qkv())


def check_ulysses_head_errors(rank: int, world_size: int) -> None:
    with pytest.raises(ValueError, match="the query tensors have 3 heads, not a multiple of 2: use method='ring'"):
        kd.context_parallel_attention(*qkv(heads=3, kv_heads=3), method="ulysses")
    with pytest.raises(ValueError, match="the key/value tensors have 1 heads, not a multiple of 2"):
        kd.context_parallel_attention(*qkv(heads=2, kv_heads=1), method="ulysses", enable_gqa=True)


def test_ulysses_needs_heads_divisible_by_the_group(ranks):
    ranks.run(2, check_ulysses_head_errors)
