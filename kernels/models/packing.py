"""Packed batches for the ready models: several sequences one after another in input_ids (1, total),
cut by `cu_seqlens` (int32 offsets, FlashAttention's layout) or by `position_ids` (1, total) that
restart (a token opens a new sequence wherever its position is not the previous one's + 1, the rule
transformers applies to packed position_ids). Self-attention then runs `kernels.varlen_attention`
within each sequence, with no padding, and so does an encoder-decoder's cross-attention (target b to
source b). The offsets are read on the host once per forward (on CUDA, one
device synchronisation), to check them and to find the longest sequence.
"""
from dataclasses import dataclass

import torch

from kernels.sdpa.varlen_checks import check_offset_list, check_offsets_tensor


@dataclass(frozen=True)
class Packing:
    cu_seqlens: torch.Tensor  # int32 (S + 1,)
    max_seqlen: int
    positions: torch.Tensor  # (1, total): each token's position within its sequence

    @property
    def n_sequences(self) -> int:
        return self.cu_seqlens.size(0) - 1

    def sequence_of_each_token(self) -> torch.Tensor:
        """(total,) long: the index of the sequence each token belongs to."""
        tokens = torch.arange(self.positions.size(1), device=self.cu_seqlens.device)
        return torch.searchsorted(self.cu_seqlens[1:].long(), tokens, right=True)


def _offsets_from_positions(position_ids: torch.Tensor, total: int, prefix: str) -> torch.Tensor:
    if not isinstance(position_ids, torch.Tensor) or position_ids.is_floating_point() or position_ids.is_complex():
        kind = position_ids.dtype if isinstance(position_ids, torch.Tensor) else type(position_ids).__name__
        raise TypeError(f"{prefix}position_ids must be an integer tensor (1, total), got {kind}")
    if tuple(position_ids.shape) != (1, total):
        raise ValueError(f"{prefix}position_ids must have the packed {prefix}input_ids' shape (1, {total}), "
                         f"got {tuple(position_ids.shape)}")
    positions = position_ids[0]
    opens = torch.ones_like(positions, dtype=torch.bool)
    opens[1:] = positions[1:] != positions[:-1] + 1
    starts = opens.nonzero().flatten()
    return torch.cat([starts, starts.new_tensor([total])]).to(torch.int32)


def is_packed(cu_seqlens, position_ids) -> bool:
    return cu_seqlens is not None or position_ids is not None


def packing_of(input_ids: torch.Tensor, attention_mask, cu_seqlens, position_ids, cache=None, *,
               prefix: str = "") -> Packing:
    """The packing `cu_seqlens` or `position_ids` (exactly one of them) describe for checked input_ids
    (1, total). `position_ids` must start each sequence at 0 (they feed the embedding). `prefix` names
    the arguments in errors (an encoder-decoder's targets: "decoder_")."""
    if cu_seqlens is not None and position_ids is not None:
        raise ValueError(f"pass one of {prefix}cu_seqlens and {prefix}position_ids to describe a packed batch, "
                         "not both")
    if attention_mask is not None or cache is not None:
        raise ValueError("a packed batch (cu_seqlens or position_ids) has no padding and no KV cache: "
                         "pass attention_mask=None and cache=None")
    if input_ids.size(0) != 1:
        raise ValueError(f"a packed batch holds its sequences one after another in {prefix}input_ids (1, total), "
                         f"got shape {tuple(input_ids.shape)}")
    total = input_ids.size(1)
    if position_ids is not None:
        cu_seqlens = _offsets_from_positions(position_ids, total, prefix)
    check_offsets_tensor(f"{prefix}cu_seqlens", cu_seqlens, input_ids.device)
    offsets = cu_seqlens.tolist()
    longest = max(end - start for start, end in zip(offsets, offsets[1:]))
    check_offset_list(f"{prefix}cu_seqlens", offsets, total, f"{prefix}input_ids.size(1)", longest,
                      "the longest sequence")
    if position_ids is None:
        starts = torch.repeat_interleave(cu_seqlens[:-1].long(), cu_seqlens.diff().long(), output_size=total)
        position_ids = (torch.arange(total, device=input_ids.device) - starts)[None]
    elif bool((position_ids[0, cu_seqlens[:-1].long()] != 0).any()):
        raise ValueError(f"{prefix}position_ids of a packed batch must restart at 0 for every sequence")
    return Packing(cu_seqlens, longest, position_ids)
