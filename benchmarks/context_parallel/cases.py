"""The benchmark's cases and the bytes each rank is expected to send for them.

Per rank, with W ranks, n = N / W local positions, s the input's element size, a = 4 (fp32 state;
8 for fp64), kv = 2 * B * Hkv * n * D * s (K and V) and q = B * Hq * n * D * s:
- ring: forward (W-1) * kv (the last block is not sent on); backward (W-1) * kv again, plus the
  dK/dV accumulators, W hops of 2 * B * Hkv * n * D * a.
- allgather: forward (W-1) * kv (an all-gather); backward the same gather plus a reduce-scatter of
  the fp32 dK/dV: (W-1) * 2 * B * Hkv * n * D * a.
- ulysses: all-to-alls keep 1/W of every tensor at home: forward (W-1)/W * (q + kv + q) (q, k, v in,
  the output back); backward (W-1)/W * (q + q + kv) (dO in, dQ, dK and dV back).
A key-padding mask adds (W-1) * B * n bytes to every gather or ring pass of K/V.
"""
from dataclasses import asdict, dataclass

import torch

from kernels.distributed.merge import state_dtype


@dataclass(frozen=True)
class Case:
    method: str
    layout: str
    world_size: int
    seq_len: int
    batch: int = 1
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 32
    is_causal: bool = True
    padded: bool = False

    def as_record(self) -> dict:
        return asdict(self)


def benchmark_cases(world_size: int, quick: bool, device: torch.device) -> list[Case]:
    seq_len = (64 if quick else 512) if device.type == "cpu" else (8192 if quick else 131072)
    head_dim = 32 if device.type == "cpu" else 128
    heads = 4 if device.type == "cpu" else 32
    kv_heads = max(world_size, heads // 4)  # GQA, still divisible for ulysses
    return [Case(method, layout, world_size, seq_len, heads=heads, kv_heads=kv_heads, head_dim=head_dim,
                 padded=padded)
            for method in ("ring", "allgather", "ulysses") for layout in ("contiguous", "zigzag")
            for padded in _paddings(quick, device)]


def _paddings(quick: bool, device: torch.device) -> tuple[bool, ...]:
    """Key padding only changes bytes on the CPU check (the mask travels with K/V); GPUs time dense."""
    if device.type != "cpu":
        return (False,)
    return (True,) if quick else (False, True)


def expected_sent_bytes(case: Case, dtype: torch.dtype) -> tuple[int, int]:
    """(forward, backward) bytes each rank sends."""
    world, n = case.world_size, case.seq_len // case.world_size
    size, state = torch.finfo(dtype).bits // 8, torch.finfo(state_dtype(dtype)).bits // 8
    kv = 2 * case.batch * case.kv_heads * n * case.head_dim * size
    q = case.batch * case.heads * n * case.head_dim * size
    mask = case.batch * n if case.padded else 0
    kv_state = 2 * case.batch * case.kv_heads * n * case.head_dim * state
    if case.method == "ring":
        return (world - 1) * (kv + mask), (world - 1) * (kv + mask) + world * kv_state
    if case.method == "allgather":
        return (world - 1) * (kv + mask), (world - 1) * (kv + mask) + (world - 1) * kv_state
    return (world - 1) * (2 * q + kv) // world + (world - 1) * mask, (world - 1) * (2 * q + kv) // world


def attention_flops(case: Case) -> float:
    """Forward + backward FLOPs of the whole sequence (docs/design.md: 4 B H N^2 D, halved when causal,
    x 3.5 for forward + backward)."""
    forward = 4 * case.batch * case.heads * case.seq_len ** 2 * case.head_dim / (2 if case.is_causal else 1)
    return 3.5 * forward
