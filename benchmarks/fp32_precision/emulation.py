"""Float32 dot products as the GPU's tensor cores compute them, emulated exactly on the CPU.

- "ieee": fp32 products and sums (FFMA), the exact-fp32 path.
- "tf32": both operands cut to TF32 (10 explicit mantissa bits) by the tensor core, which reads
  only the top 19 bits of each fp32 register (a truncation), products exact, fp32 sums.
- "tf32x3": each operand split into a TF32 "big" part (rounded to nearest, as the conversion
  Triton inserts does) and the remainder, cut to TF32 by the tensor core in turn; three TF32 dots
  (small x big, big x small, big x big) into one fp32 accumulator: the small x small term (~2^-22
  relative) is all that is lost beyond fp32 accumulation.
"""
import torch

MODES = ("ieee", "tf32", "tf32x3")
_DROPPED_BITS = 13  # fp32 keeps 23 mantissa bits, TF32 10
MMA_K = 8  # the K depth of one TF32 MMA instruction: the accumulator is rounded to fp32 this often


def tf32_truncated(x: torch.Tensor) -> torch.Tensor:
    """x (float32) with the 13 low mantissa bits cleared: what a TF32 tensor core reads of it."""
    bits = x.contiguous().view(torch.int32)
    return (bits & ~((1 << _DROPPED_BITS) - 1)).view(torch.float32)


def tf32_rounded(x: torch.Tensor) -> torch.Tensor:
    """x (float32) rounded to the nearest TF32 value, ties away from zero (cvt.rna.tf32.f32)."""
    bits = x.contiguous().view(torch.int32)
    return ((bits + (1 << (_DROPPED_BITS - 1))) & ~((1 << _DROPPED_BITS) - 1)).view(torch.float32)


def _tensor_core_dot(a: torch.Tensor, b: torch.Tensor, acc: torch.Tensor | None = None) -> torch.Tensor:
    """acc + a @ b as TF32 tensor cores compute it: exact products of the truncated operands, added
    to an fp32 accumulator every MMA_K columns (rounded to fp32 at each step)."""
    a, b = tf32_truncated(a).double(), tf32_truncated(b).double()
    out = torch.zeros(*a.shape[:-1], b.size(-1), dtype=torch.float32) if acc is None else acc
    for start in range(0, a.size(-1), MMA_K):
        out = (out.double() + a[..., start:start + MMA_K] @ b[..., start:start + MMA_K, :]).float()
    return out


def dot(a: torch.Tensor, b: torch.Tensor, mode: str) -> torch.Tensor:
    """a (.., M, K) @ b (.., K, N) in float32 as `mode` computes it on a GPU."""
    if mode == "ieee":
        return a @ b
    if mode == "tf32":
        return _tensor_core_dot(a, b)
    if mode == "tf32x3":  # the small terms first, into the one fp32 accumulator
        a_big, b_big = tf32_rounded(a), tf32_rounded(b)
        acc = _tensor_core_dot(a - a_big, b_big)
        acc = _tensor_core_dot(a_big, b - b_big, acc)
        return _tensor_core_dot(a_big, b_big, acc)
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mode: str) -> torch.Tensor:
    """Float32 attention (B, H, N, D) with both of its dots (Q K^T and P V) computed as `mode` does;
    the softmax in fp32, as in the kernel."""
    scores = dot(q, k.transpose(-1, -2), mode) * q.size(-1) ** -0.5
    weights = torch.softmax(scores, dim=-1)
    return dot(weights, v, mode)
