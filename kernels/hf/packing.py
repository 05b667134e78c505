"""transformers' padding-free batches ("packed": several sequences one after another in a row, as
`DataCollatorWithFlattening` builds them) found in what the attention function receives, so that
they run through `kernels.varlen_attention` instead of a (batch, 1, N, N) block-diagonal mask.

A packed batch shows up in one of two ways:
- FlashAttention's kwargs `cu_seq_lens_q`, `cu_seq_lens_k`, `max_length_q`, `max_length_k`
  (`DataCollatorWithFlattening(return_flash_attn_kwargs=True)`): they define the sequences, as in
  transformers' flash path (`max_length_*` given as tensors cost one device synchronisation each);
- packed `position_ids` only: transformers then builds the block-diagonal causal mask itself.
  `packing_from_mask` recognises exactly that mask (each row split into causal blocks, nothing
  else) and reads the blocks off it: one comparison over the mask and one device synchronisation
  per forward, cached on the mask tensor that every layer receives. Any other mask is not packing.
"""
from dataclasses import dataclass

import torch

from kernels.hf.masks import causal_key_padding

VARLEN_KWARGS = ("cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k")
_MASK_PACKING = "_kernels_hf_packed_sequences"  # (mask version, HFPacking or None) cached on the mask


@dataclass(frozen=True)
class HFPacking:
    """The sequences of a packed Hugging Face batch, in the flattened (batch * N) token order, and how
    the packing was learned (`causal`). The Triton launchers take the same offsets and bounds as
    kernels/sdpa/triton/sequences.PackedSequences, which this module cannot import (it runs without
    triton)."""
    cu_seqlens_q: torch.Tensor
    cu_seqlens_k: torch.Tensor
    max_seqlen_q: int
    max_seqlen_k: int
    causal: bool | None  # None: as the module says; True: the mask it was read from is causal


def packing_from_kwargs(kwargs: dict) -> HFPacking | None:
    """The packing FlashAttention's varlen kwargs describe, or None when none is given."""
    given = [name for name in VARLEN_KWARGS if kwargs.get(name) is not None]
    if not given:
        return None
    if len(given) != len(VARLEN_KWARGS):
        missing = [name for name in VARLEN_KWARGS if name not in given]
        raise ValueError(f"a padding-free batch needs all of {VARLEN_KWARGS}; {given} were given without {missing}")
    cu_q, cu_k, max_q, max_k = (kwargs[name] for name in VARLEN_KWARGS)
    as_int = [int(value) if isinstance(value, torch.Tensor) and value.dim() == 0 else value for value in (max_q, max_k)]
    return HFPacking(cu_q, cu_k, *as_int, causal=None)


def _read_block_diagonal_causal(mask: torch.Tensor) -> HFPacking | None:
    """The packing a (B, 1, N, N) bool mask encodes when it is block-diagonal causal with at least one
    row holding several blocks; None for any other mask."""
    batch, _, length, _ = mask.shape
    keep = mask[:, 0]  # (B, N, N)
    starts = torch.ones(batch, length, dtype=torch.bool, device=mask.device)
    starts[:, 1:] = ~keep.diagonal(offset=-1, dim1=1, dim2=2)  # token i opens a block unless it sees token i - 1
    block = starts.long().cumsum(-1)  # (B, N): each token's block number within its row
    expected = (block[:, :, None] == block[:, None, :]).tril()
    if not torch.equal(keep, expected) or int(starts.sum()) == batch:  # not this mask, or one block per row
        return None
    offsets = starts.flatten().nonzero().flatten()
    total = torch.tensor([batch * length], device=mask.device)
    cu_seqlens = torch.cat([offsets, total]).to(torch.int32)
    longest = int(cu_seqlens.diff().max())
    return HFPacking(cu_seqlens, cu_seqlens, longest, longest, causal=True)


def packing_from_mask(mask: torch.Tensor | None) -> HFPacking | None:
    """The packing of transformers' block-diagonal causal mask for packed `position_ids` (see the module
    docstring), or None. Eager mode only: under torch.compile the mask runs as a mask."""
    if (mask is None or torch.compiler.is_compiling() or mask.dtype != torch.bool or mask.dim() != 4
            or mask.size(1) != 1 or mask.size(2) != mask.size(3) or mask.size(2) < 2
            or mask.stride(2) == 0 or causal_key_padding(mask) is not None):  # stride 0: the same row for every query
        return None
    if mask.is_inference():  # no version counter (torch.inference_mode): read it anew
        return _read_block_diagonal_causal(mask)
    cached = getattr(mask, _MASK_PACKING, None)
    if cached is not None and cached[0] == mask._version:
        return cached[1]
    packing = _read_block_diagonal_causal(mask)
    setattr(mask, _MASK_PACKING, (mask._version, packing))
    return packing


def packing_to_run(mask: torch.Tensor | None, kwargs: dict) -> HFPacking | None:
    """The packed sequences that the attention function runs through `varlen_attention`, or None: the
    FlashAttention kwargs when given, else the block-diagonal causal mask transformers built from
    packed position_ids (every backend runs varlen_attention, the triton one with its varlen kernel)."""
    given = packing_from_kwargs(kwargs)
    return given if given is not None else packing_from_mask(mask)
