"""The packed documents of the `masked` sweep's `documents` and `documents-padded` cases.

A batch row of N tokens packs documents of uneven lengths, causal attention within each (no query sees
another document). The recipe is fixed, so that every input set, run and provider sees the same
documents: lengths drawn uniformly in [N/32, 5N/32] (at least 1) by a CPU generator seeded 0 until they
fill N, the last one cut to fit; about 11 documents a row (8 to 16 at every N the GPU runs), the
same in every batch row. `documents` packs them (one row of N tokens each); `documents-padded` is the
same documents as a training batch pads them: one document per row, padded to the longest.
"""

import functools
from dataclasses import dataclass

import torch

_SEED = 0
_LENGTHS = (1 / 32, 5 / 32)  # the range of a document's length, as fractions of N


@functools.cache
def document_lengths(n: int) -> tuple[int, ...]:
    """The lengths of the documents packed into a row of `n` tokens (they sum to `n`)."""
    generator = torch.Generator().manual_seed(_SEED)
    low, high = (max(1, round(fraction * n)) for fraction in _LENGTHS)
    lengths: list[int] = []
    while sum(lengths) < n:
        drawn = int(torch.randint(low, high + 1, (1,), generator=generator))
        lengths.append(min(drawn, n - sum(lengths)))
    return tuple(lengths)


@dataclass(frozen=True)
class PackedDocuments:
    """The documents of a (B, H, N, D) `documents` input as the providers without a dense mask take them."""

    lengths: tuple[int, ...]  # one batch row's documents
    ids: torch.Tensor  # (N,) int32: each position's document (FlexAttention's mask_mod compares them)
    # int32 (B * H * documents + 1,): varlen_attention's offsets into q viewed as (B * H * N, 1, D), that is
    # every (batch row, head)'s documents as sequences of one head (the same attention, nothing copied)
    cu_seqlens: torch.Tensor


def packed_documents(batch: int, heads: int, n: int, device: torch.device) -> tuple[torch.Tensor, PackedDocuments]:
    """(the bool (N, N) block-diagonal causal mask, True = attend; the same documents for the others)."""
    lengths = document_lengths(n)
    ids = torch.repeat_interleave(torch.arange(len(lengths), device=device),
                                  torch.tensor(lengths, device=device)).to(torch.int32)
    positions = torch.arange(n, device=device)
    mask = (ids.view(n, 1) == ids) & (positions.view(n, 1) >= positions)
    starts = torch.tensor((0, *lengths[:-1]), device=device).cumsum(0)  # of one row's documents
    row_starts = torch.arange(batch * heads, device=device).view(-1, 1) * n
    cu_seqlens = torch.cat([(row_starts + starts).flatten(), torch.tensor([batch * heads * n], device=device)])
    return mask, PackedDocuments(lengths, ids, cu_seqlens.to(torch.int32))


def padded_documents(batch: int, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The B rows' documents padded to the longest, one a row: (key padding (B * documents, L) bool, True
    for a document's tokens; the bool (B * documents, 1, L, L) mask of causal attention over them)."""
    lengths = torch.tensor(document_lengths(n), device=device).repeat(batch)
    longest = int(lengths.max())
    positions = torch.arange(longest, device=device)
    key_padding = positions < lengths.view(-1, 1)
    causal = positions.view(longest, 1) >= positions
    return key_padding, causal & key_padding[:, None, None, :]
