"""What the context-parallel tests run inside every rank: build the same full inputs on every rank
from one seed, run the sharded attention forward and backward, gather, and hold the result and the
three gradients to the pass rule against single-device `kernels.attention` and the float64 reference.
Only rank 0 computes the references; every rank must see the Triton kernels run (when asked)."""
from dataclasses import dataclass

import torch

import kernels
import reference
from kernels import distributed as kd
from kernels.distributed import chunk_attention
from kernels.testing.parity import assert_parity


@dataclass(frozen=True)
class Case:
    method: str
    layout: str
    is_causal: bool
    gqa: bool
    padding: bool
    dtype: torch.dtype = torch.float32
    chunk_length: int = 6  # not a power of two: the kernels' bounds checks are exercised
    head_dim: int = 16
    backend: str = "triton"  # "torch": the plain PyTorch fallback of CPU runs without the interpreter
    odd_length: bool = False  # one token short of a length that shards: padded with pad_for_sharding

    def __str__(self) -> str:
        return (f"{self.method}/{self.layout}/{'causal' if self.is_causal else 'dense'}/"
                f"{'gqa' if self.gqa else 'mha'}/{'padded' if self.padding else 'unpadded'}/{self.dtype}/"
                f"{self.backend}{'/odd-length' if self.odd_length else ''}")


def feature_cases(method: str, layout: str, **options) -> list[Case]:
    """Half of the combinations of causal x GQA x key padding for one method and layout, the half whose
    count of features on is even for the contiguous layout and odd for zigzag: each layout still meets
    every pair of the three features in all four of its settings, and the two layouts together run
    every combination (the full product on both layouts cost 4 minutes of the CI's 2 cores)."""
    parity = 1 if layout == "zigzag" else 0
    return [Case(method, layout, causal, gqa, padding, **options)
            for causal in (False, True) for gqa in (False, True) for padding in (False, True)
            if (causal + gqa + padding) % 2 == parity]


def poison_kernel_buffers() -> None:
    """Fill every buffer the kernels write with NaN first, so an element they skip shows up."""
    chunk_attention.allocate = lambda shape, dtype, device: torch.full(shape, float("nan"), dtype=dtype,
                                                                       device=device)


def full_inputs(case: Case, world_size: int, seed: int):
    """(q, k, v, dout, keep) for the whole sequence, identical on every rank."""
    generator = torch.Generator().manual_seed(seed)
    n = case.chunk_length * kd.layouts.chunk_count(world_size, case.layout)
    # Ulysses splits heads across the ranks: both head counts must divide by the world size.
    kv_heads = world_size if case.method == "ulysses" else (1 if case.gqa else 2)
    batch, q_heads = 2, 2 * kv_heads if case.gqa else kv_heads

    def randn(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64).to(case.dtype)

    q, k, v = randn(batch, q_heads, n, case.head_dim), randn(batch, kv_heads, n, case.head_dim), \
        randn(batch, kv_heads, n, case.head_dim)
    dout = randn(batch, q_heads, n, case.head_dim)
    keep = None
    if case.padding:  # row 0 left-padded (its first queries see no key under causality), row 1 with holes
        keep = torch.rand(batch, n, generator=generator) > 0.3
        keep[0, : n // 3] = False
        keep[1, -1] = True
    return q, k, v, dout, keep


def references(case: Case, q, k, v, dout, keep):
    """(single-device kernels.attention, float64 reference): each a tuple (out, dq, dk, dv)."""
    gqa = case.gqa

    def single(q, k, v):
        if case.is_causal and keep is not None:
            return kernels.causal_attention_with_key_padding(q, k, v, keep, enable_gqa=gqa)
        mask = None if keep is None else keep[:, None, None, :]
        return kernels.attention(q, k, v, attn_mask=mask, is_causal=case.is_causal, enable_gqa=gqa)

    def exact(q, k, v):
        n = q.size(2)
        mask = torch.ones(n, n, dtype=torch.bool).tril() if case.is_causal else torch.ones(n, n, dtype=torch.bool)
        if keep is not None:
            mask = mask & keep[:, None, None, :]
        return reference.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)

    results = []
    for function, dtype in ((single, case.dtype), (exact, torch.float64)):
        inputs = [t.detach().to(dtype).requires_grad_() for t in (q, k, v)]
        out = function(*inputs)
        out.backward(dout.to(dtype))
        results.append((out.detach(), *(t.grad for t in inputs)))
    return results


def padded_to_shard(case: Case, q, k, v, dout, keep):
    """(q, k, v, dout) zero-padded by pad_for_sharding, and the key mask with every pad False."""
    padded = [kd.pad_for_sharding(t, dim=2, layout=case.layout) for t in (q, k, v, dout)]
    (q, real), (k, _), (v, _), (dout, _) = padded
    real = real.expand(q.size(0), -1)  # (B, N_padded)
    if keep is not None:
        real = real & torch.cat([keep, keep.new_zeros(keep.size(0), real.size(1) - keep.size(1))], dim=1)
    return q, k, v, dout, real


def run_case(case: Case, rank: int, world_size: int, seed: int) -> None:
    q, k, v, dout, keep = full_inputs(case, world_size, seed)
    if case.odd_length:  # one token short: the layout cannot split it without padding
        q, k, v, dout = (t[:, :, :-1] for t in (q, k, v, dout))
        keep = None if keep is None else keep[:, :-1]
        sharded = padded_to_shard(case, q, k, v, dout, keep)
    else:
        sharded = q, k, v, dout, keep
    shard = lambda t, dim=2: kd.shard_sequence(t, dim=dim, layout=case.layout)  # noqa: E731
    local = [shard(t).detach().requires_grad_() for t in sharded[:3]]
    with kernels.use_backend(case.backend), kernels.record_backends() as ran:
        out_local = kd.context_parallel_attention(
            *local, method=case.method, layout=case.layout, is_causal=case.is_causal, enable_gqa=case.gqa,
            key_padding=None if sharded[4] is None else shard(sharded[4], 1))
        out_local.backward(shard(sharded[3]))
    assert ran and set(ran) == {case.backend}, f"{case}: expected only {case.backend} to run, got {ran}"
    results = (out_local.detach(), *(t.grad for t in local))
    gathered = [kd.unshard_sequence(t, dim=2, layout=case.layout)[:, :, :q.size(2)] for t in results]
    if rank != 0:
        return
    single, exact = references(case, q, k, v, dout, keep)
    for name, actual, expected, baseline in zip(("out", "dq", "dk", "dv"), gathered, exact, single):
        try:
            if case.dtype == torch.float64:
                error = (actual - expected).abs().max().item()
                assert error <= 1e-6, f"max |error| {error:.3g} > 1e-6"
            else:
                assert_parity(actual, expected, baseline)
        except AssertionError as failure:
            raise AssertionError(f"{case}, {name} on {world_size} ranks: {failure}") from None


def run_cases(rank: int, world_size: int, seed: int, cases: list[Case]) -> None:
    """A job for RankPool: every case in turn, each from its own seed."""
    poison_kernel_buffers()
    for index, case in enumerate(cases):
        run_case(case, rank, world_size, seed + index)
