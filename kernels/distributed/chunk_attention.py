"""Attention of one query chunk against one key chunk, the unit every method is built from.

Chunks are equal-length pieces of the global sequence (see layouts.py). Under a causal mask a
query chunk i and a key chunk j relate in one of three ways:
- j < i: every key precedes every query: full attention, no causal compare;
- j == i: the diagonal chunk: causal, and top-left alignment is exact (same start, same length);
- j > i: every key follows every query: skipped, nothing computed.
Results come back in fp32 (fp64 for fp64 inputs) so merging them loses nothing: the Triton forward
writes straight into an accumulator-dtype output and the backward into accumulator-dtype gradients.
This is the only file calling the Triton launchers.
"""
import torch

from kernels.distributed import torch_chunk
from kernels.distributed.merge import state_dtype
from kernels.shared.backends import note_backend_ran, resolve_backend
from kernels.shared.triton_availability import TRITON_AVAILABLE

if TRITON_AVAILABLE:
    from kernels.sdpa.triton.backward import launch_backward
    from kernels.sdpa.triton.forward import launch_forward

FULL, DIAGONAL, SKIPPED = "full", "diagonal", "skipped"


def chunk_relation(query_chunk: int, key_chunk: int, is_causal: bool) -> str:
    if not is_causal or key_chunk < query_chunk:
        return FULL
    return DIAGONAL if key_chunk == query_chunk else SKIPPED


def chunk_backend(device: torch.device) -> str:
    """Where the chunks run: "triton" where the kernels can (CUDA, or CPU under TRITON_INTERPRET=1),
    else "torch"; `kernels.use_backend` overrides it ("reference" also runs the plain PyTorch math)."""
    return "triton" if resolve_backend(None, device) == "triton" else "torch"


def allocate(shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The buffers the kernels write (tests replace this to poison them with NaN)."""
    return torch.empty(shape, dtype=dtype, device=device)


def _padding_mask(keep: torch.Tensor | None, q: torch.Tensor, n_keys: int) -> torch.Tensor | None:
    """The kernel's (B, Hq, Nq, Nk) stride-0 view of a (B, Nk) key mask (its padded tiles are skipped)."""
    if keep is None:
        return None
    return keep[:, None, None, :].expand(q.size(0), q.size(1), q.size(2), n_keys)


def chunk_forward(q, k, v, keep, diagonal: bool, scale: float, backend: str):
    """(out (B, Hq, Nq, Dv), lse (B, Hq, Nq)) in the accumulator dtype, for q (B, Hq, Nq, D) against
    k, v (B, Hkv, Nk, D|Dv) and keep (B, Nk) bool or None; `diagonal` applies the causal mask."""
    dtype = state_dtype(q.dtype)
    note_backend_ran(backend)
    if backend == "torch":
        return torch_chunk.chunk_forward(q, k, v, keep, diagonal, scale, dtype)
    out = allocate((q.size(0), q.size(1), q.size(2), v.size(3)), dtype, q.device)
    lse = allocate(q.shape[:3], dtype, q.device)
    launch_forward(q, k, v, _padding_mask(keep, q, k.size(2)), diagonal, scale, out=out, lse=lse)
    return out, lse


def chunk_backward(q, k, v, out, lse, dout, keep, diagonal: bool, scale: float, backend: str):
    """(dq, dk, dv) in the accumulator dtype: this key chunk's share of the gradients, given the
    final (merged) out and lse of the query chunk, which make each chunk's share exact."""
    dtype = state_dtype(q.dtype)
    note_backend_ran(backend)
    if backend == "torch":
        return torch_chunk.chunk_backward(q, k, v, out, lse, dout, keep, diagonal, scale, dtype)
    grads = tuple(allocate(t.shape, dtype, t.device) for t in (q, k, v))
    launch_backward(q, k, v, out, lse.contiguous(), dout, _padding_mask(keep, q, k.size(2)), diagonal, scale,
                    grads=grads)
    return grads
