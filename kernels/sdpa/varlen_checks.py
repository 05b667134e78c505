"""Input checks of `varlen_attention`: packed q/k/v and the cu_seqlens offsets that cut them into
sequences. Every bad input gets an error naming the argument before any kernel runs.

Two kinds of checks:
- metadata (ranks, dtypes, devices, shapes, the batch size B implied by each offsets tensor, the
  max_seqlen arguments): free, always made;
- values of the offsets (start at 0, non-decreasing, last entry = total, no length over max_seqlen):
  they need the offsets on the host. `check_offset_values` takes them as Python lists, which the
  torch and reference backends read anyway to loop over the sequences, so on those backends (and on
  CPU tensors, where reading costs no device synchronisation) every check is always made.
"""
import numbers

import torch

from kernels.sdpa.validation import check_attention_inputs


def _check_packed(name: str, tensor) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dim() != 3:
        raise ValueError(f"{name} must have rank 3 (total_tokens, heads, head_dim), got shape {tuple(tensor.shape)}")


def check_offsets_tensor(name: str, offsets, device: torch.device) -> None:
    if not isinstance(offsets, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of int32 offsets, got {type(offsets).__name__}")
    if offsets.dtype != torch.int32:
        raise TypeError(f"{name} must have dtype torch.int32 (as FlashAttention's varlen functions), "
                        f"got {offsets.dtype}")
    if offsets.dim() != 1 or offsets.size(0) < 2:
        raise ValueError(f"{name} must be 1-D of size batch + 1 >= 2 (offsets 0, ..., total), "
                         f"got shape {tuple(offsets.shape)}")
    if offsets.device != device:
        raise ValueError(f"{name} is on {offsets.device} but q is on {device}")


def _check_max_seqlen(name: str, value) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 0:
        raise TypeError(f"{name} must be a non-negative int (it sizes the kernel's grid), got {value!r}")


def check_varlen_inputs(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
                        dropout_p, is_causal, scale, enable_gqa) -> None:
    """The metadata checks, made for every backend without reading any tensor's values."""
    for name, tensor in (("q", q), ("k", k), ("v", v)):
        _check_packed(name, tensor)
    if k.size(0) != v.size(0) or k.size(1) != v.size(1):
        raise ValueError(f"k {tuple(k.shape)} and v {tuple(v.shape)} must match in total_k and heads")
    # The (1, heads, total, head_dim) views share kernels.attention's checks of dtype, device, head
    # dims, grouped-query heads, dropout_p, is_causal and scale.
    check_attention_inputs(*(t.transpose(0, 1).unsqueeze(0) for t in (q, k, v)), None, dropout_p, is_causal, scale,
                           enable_gqa)
    check_offsets_tensor("cu_seqlens_q", cu_seqlens_q, q.device)
    check_offsets_tensor("cu_seqlens_k", cu_seqlens_k, q.device)
    if cu_seqlens_q.size(0) != cu_seqlens_k.size(0):
        raise ValueError(f"cu_seqlens_q describes {cu_seqlens_q.size(0) - 1} sequences but cu_seqlens_k "
                         f"{cu_seqlens_k.size(0) - 1}: both need batch + 1 offsets")
    _check_max_seqlen("max_seqlen_q", max_seqlen_q)
    _check_max_seqlen("max_seqlen_k", max_seqlen_k)


def check_offset_list(name: str, offsets: list[int], total: int, total_name: str, max_seqlen: int,
                       max_name: str) -> None:
    if offsets[0] != 0:
        raise ValueError(f"{name} must start at 0, got {offsets[0]}")
    lengths = [end - start for start, end in zip(offsets, offsets[1:])]
    shrinking = next((index for index, length in enumerate(lengths) if length < 0), None)
    if shrinking is not None:
        raise ValueError(f"{name} must be non-decreasing, but entry {shrinking + 1} ({offsets[shrinking + 1]}) "
                         f"is below entry {shrinking} ({offsets[shrinking]})")
    if offsets[-1] != total:
        raise ValueError(f"{name} must end at {total_name} = {total}, got {offsets[-1]}")
    longest = max(lengths)
    if longest > max_seqlen:
        raise ValueError(f"{name} holds a sequence of {longest} tokens, more than {max_name} = {max_seqlen}")


def check_offset_values(offsets_q: list[int], offsets_k: list[int], total_q: int, total_k: int,
                        max_seqlen_q: int, max_seqlen_k: int) -> None:
    """The value checks, on offsets already read to the host (`tensor.tolist()`)."""
    check_offset_list("cu_seqlens_q", offsets_q, total_q, "q.size(0)", max_seqlen_q, "max_seqlen_q")
    check_offset_list("cu_seqlens_k", offsets_k, total_k, "k.size(0)", max_seqlen_k, "max_seqlen_k")
