"""Launchers of the attention kernels on packed variable-length sequences (VARLEN mode, sequences.py).

They take the packed tensors as `varlen_attention` does, q (total_q, Hq, D), k/v (total_k, Hkv, D|Dv),
allocate the packed results, and run the dense launchers on `batched_view`s of them. Nothing is
padded or copied, and nothing reads the offsets on the host.
"""
import torch

from kernels.sdpa.triton.backward import launch_backward
from kernels.sdpa.triton.common import accumulator_dtype
from kernels.sdpa.triton.forward import launch_forward
from kernels.sdpa.triton.score_variants import lse_without_keys
from kernels.sdpa.triton.sequences import PackedSequences, batched_view
from kernels.sdpa.variants import AttentionVariants
from kernels.shared.dropout import Dropout


def empty_varlen_lse(q: torch.Tensor, return_lse: bool) -> torch.Tensor:
    """The log-sum-exp of packed queries q (total_q, Hq, D): (Hq, total_q), or (0,) when not stored."""
    shape = (q.size(1), q.size(0)) if return_lse else (0,)
    return q.new_empty(shape, dtype=accumulator_dtype(q.dtype))


def launch_varlen_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, sequences: PackedSequences,
                          is_causal: bool, scale: float, dropout: Dropout = Dropout(), return_lse: bool = True,
                          outputs: tuple[torch.Tensor, torch.Tensor] | None = None,
                          variants: AttentionVariants | None = None,
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """(out (total_q, Hq, Dv), lse (Hq, total_q) or (0,) without `return_lse`) of validated packed inputs.
    `outputs`, when given, are the contiguous (out, lse) to write into (tests poison them first).
    `variants`: window / softcap / ALiBi / sinks per sequence ((B, Hq) slopes: a row per sequence)."""
    if outputs is None:
        outputs = q.new_empty(q.size(0), q.size(1), v.size(2)), empty_varlen_lse(q, return_lse)
    out, lse = outputs
    if out.numel() == 0:
        return out, lse
    if sequences.max_seqlen_k == 0:  # no sequence has a key: every row is fully masked
        out.zero_()
        if return_lse:
            lse.copy_(lse_without_keys(lse.unsqueeze(0), variants)[0])
        return out, lse
    batch = sequences.batch
    launch_forward(batched_view(q, batch), batched_view(k, batch), batched_view(v, batch), None, is_causal, scale,
                   out=batched_view(out, batch), lse=lse.expand(batch, -1, -1) if return_lse else None,
                   dropout=dropout, sequences=sequences, variants=variants)
    return out, lse


def launch_varlen_backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor, lse: torch.Tensor,
                           dout: torch.Tensor, sequences: PackedSequences, is_causal: bool, scale: float,
                           dropout: Dropout = Dropout(),
                           grads: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
                           variants: AttentionVariants | None = None, sinks_grad: torch.Tensor | None = None,
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dq, dk, dv), packed like q, k, v, of the forward that returned `out` and `lse` (Hq, total_q).
    `grads`, when given, are the packed tensors to write into (tests poison them first). `variants` as
    the forward's; with sinks, `sinks_grad` receives their gradient."""
    dq, dk, dv = grads if grads is not None else (torch.empty_like(q), torch.empty_like(k), torch.empty_like(v))
    if q.size(0) == 0 or k.size(0) == 0 or sequences.max_seqlen_q == 0 or sequences.max_seqlen_k == 0:
        if sinks_grad is not None:  # no key: every output row is zero, so is each sink's gradient
            sinks_grad.zero_()
        return dq.zero_(), dk.zero_(), dv.zero_()  # no query attends any key
    batch = sequences.batch
    views = [batched_view(tensor, batch) for tensor in (q, k, v, out, dout, dq, dk, dv)]
    launch_backward(*views[:4], lse.expand(batch, -1, -1), views[4], None, is_causal, scale, dropout=dropout,
                    grads=tuple(views[5:]), sequences=sequences, variants=variants, sinks_grad=sinks_grad)
    return dq, dk, dv
