"""Block-sparse skipping of dense masks: a mask summarised per MAP_BLOCK x MAP_BLOCK tile of its
(queries, keys) plane, so that the Triton kernels never visit a tile the mask hides whole, and read no
mask on a tile it keeps whole.

Each tile of the map is EMPTY (no score attended: a bool mask all False, a float mask all -inf), FULL
(every score kept unchanged: all True, or all 0.0) or PARTIAL (the kernels read the mask there). The
launchers turn the map into tile lists (`tile_lists`): for each query block, the key blocks to visit,
FULL ones first (the forward and the dQ kernel), and for each key block the query blocks (the dK/dV
kernel), with the causal diagonal and a window folded in. Everything runs on the device, without a
host synchronisation; the map and the lists are remembered on the mask (mask_memory.py), so the layers
of a model that share one mask build them once.

When: every bool or float mask whose rows differ (not a key-padding mask, which the kernels skip by
its key span instead) and that spans more than one map tile; `KERNELS_BLOCK_MAPS=0` turns it off
(to compare with the dense mask reads). `BlockMask.from_mask` builds the map ahead of the call.
MAP_BLOCK is the largest BLOCK_M and BLOCK_N of every kernel tile, which all divide it: a kernel tile
lies inside one map tile (tests/compile/test_tile_sets.py keeps it so).
"""
import os

import torch
import torch.nn.functional as F

from kernels.sdpa.mask_memory import remembered

MAP_BLOCK = 128
EMPTY, FULL, PARTIAL = 0, 1, 2


def block_maps_enabled() -> bool:
    """KERNELS_BLOCK_MAPS=0 turns block-sparse skipping off; read at each call."""
    return os.environ.get("KERNELS_BLOCK_MAPS", "1") != "0"


def _compact(mask: torch.Tensor) -> torch.Tensor:
    """The (B', H', Nq, Nk) mask without its broadcast batch and head dims (size 1 where stride 0)."""
    for dim in (0, 1):
        if mask.stride(dim) == 0:
            mask = mask.narrow(dim, 0, 1)
    return mask


def _tile_states(mask: torch.Tensor) -> torch.Tensor:
    """(B', H', ceil(Nq / MAP_BLOCK), ceil(Nk / MAP_BLOCK)) uint8 EMPTY / FULL / PARTIAL of a rank-4 mask
    with no broadcast batch or head dim (see _compact); positions past Nq or Nk count neither as attended
    nor as masked."""
    if mask.dtype == torch.bool:
        attended, plain = mask, mask
    else:
        attended, plain = mask != float("-inf"), mask == 0
    batch, heads, n_queries, n_keys = mask.shape
    rows, cols = -(-n_queries // MAP_BLOCK), -(-n_keys // MAP_BLOCK)
    padding = (0, cols * MAP_BLOCK - n_keys, 0, rows * MAP_BLOCK - n_queries)
    tiles = (batch, heads, rows, MAP_BLOCK, cols, MAP_BLOCK)
    any_attended = F.pad(attended, padding, value=False).reshape(tiles).any(dim=(3, 5))
    all_plain = F.pad(plain, padding, value=True).reshape(tiles).all(dim=(3, 5))
    return torch.where(any_attended, torch.where(all_plain, FULL, PARTIAL), EMPTY).to(torch.uint8)


def tile_states(mask: torch.Tensor) -> torch.Tensor:
    """_tile_states, remembered on the mask (mask_memory.py) without its broadcast dims, so that every
    broadcast view of one mask (and BlockMask.from_mask's) shares it."""
    compact = _compact(mask)
    return remembered(compact, "tile_states", None, lambda: _tile_states(compact))


def _band_states(n_queries: int, n_keys: int, before: int | None, after: int | None, device) -> torch.Tensor:
    """(rows, cols) map of the band where query i attends keys i - before .. i + after (None: unbounded)."""
    first_row = torch.arange(0, n_queries, MAP_BLOCK, device=device)[:, None]
    last_row = torch.clamp(first_row + MAP_BLOCK, max=n_queries) - 1
    first_key = torch.arange(0, n_keys, MAP_BLOCK, device=device)[None, :]
    last_key = torch.clamp(first_key + MAP_BLOCK, max=n_keys) - 1
    full = torch.ones(first_row.size(0), first_key.size(1), dtype=torch.bool, device=device)
    empty = torch.zeros_like(full)
    if before is not None:
        full = full & (first_key >= last_row - before)
        empty = empty | (last_key < first_row - before)
    if after is not None:
        full = full & (last_key <= first_row + after)
        empty = empty | (first_key > last_row + after)
    return torch.where(empty, EMPTY, torch.where(full, FULL, PARTIAL)).to(torch.uint8)


def _intersection(states: torch.Tensor, band: torch.Tensor) -> torch.Tensor:
    """The map of a mask and a band both applied: EMPTY where either is, FULL where both are."""
    either_empty = (states == EMPTY) | (band == EMPTY)
    both_full = (states == FULL) & (band == FULL)
    return torch.where(either_empty, EMPTY, torch.where(both_full, FULL, PARTIAL)).to(torch.uint8)


def _lists(states: torch.Tensor, by_keys: bool) -> torch.Tensor:
    """(B', H', blocks, 2 + other blocks) int32: per query block (per key block when `by_keys`), the
    number of FULL tiles, the number of listed (FULL or PARTIAL) tiles, then the other side's block
    indices, FULL ones first, each group in ascending order (then the EMPTY ones, never read)."""
    if by_keys:
        states = states.transpose(-1, -2)
    rank = torch.where(states == FULL, 0, torch.where(states == PARTIAL, 1, 2))
    order = torch.argsort(rank, dim=-1, stable=True)
    counts = torch.stack([(rank == 0).sum(-1), (rank < 2).sum(-1)], dim=-1)
    return torch.cat([counts, order], dim=-1).to(torch.int32).contiguous()


def tile_lists(mask: torch.Tensor, is_causal: bool, window: tuple[int | None, int | None] | None,
               by_keys: bool) -> torch.Tensor:
    """The kernels' tile lists (_lists) of a rank-4 (B, H, Nq, Nk) mask view with top-left causality and
    a window (left, right) folded in, broadcast back to (B, H, blocks, 2 + other blocks) by stride 0;
    remembered on the mask for the same arguments."""

    def build() -> torch.Tensor:
        states = tile_states(mask)
        n_queries, n_keys = mask.shape[2:]
        if is_causal:
            states = _intersection(states, _band_states(n_queries, n_keys, None, 0, mask.device))
        if window is not None:
            states = _intersection(states, _band_states(n_queries, n_keys, *window, mask.device))
        lists = _lists(states, by_keys)
        return lists.expand(*mask.shape[:2], *lists.shape[2:])

    return remembered(mask, "tile_lists_by_keys" if by_keys else "tile_lists", (is_causal, window), build)


def uses_block_map(mask: torch.Tensor | None, shared_row: bool) -> bool:
    """Whether the kernels skip tiles of this rank-4 mask view by its map: a mask whose rows differ
    (`shared_row`: a key-padding mask, skipped by its key span instead) over more than one map tile."""
    return (mask is not None and not shared_row and max(mask.shape[2], mask.shape[3]) > MAP_BLOCK
            and block_maps_enabled())


class BlockMask:
    """A dense mask with its block map built ahead of the call, for `kernels.attention(..., attn_mask=...)`.

    `kernels.attention` builds the same map on its own the first time it sees a mask on the Triton
    backend and remembers it on the mask; `BlockMask.from_mask` does it now (outside a timed region or
    a CUDA graph capture, say) and shows it: `states` is the (B', H', rows, cols) uint8 map of EMPTY (0),
    FULL (1) and PARTIAL (2) MAP_BLOCK x MAP_BLOCK tiles, B' and H' being 1 where the mask broadcasts.
    Every backend accepts it (the torch and reference backends use `mask`)."""

    def __init__(self, mask: torch.Tensor, states: torch.Tensor):
        self.mask = mask
        self.states = states
        self.block_size = MAP_BLOCK

    @classmethod
    def from_mask(cls, mask: torch.Tensor) -> "BlockMask":
        """`mask`: bool (True = attend) or float (added to the scores) of shape (Nq, Nk), (B or 1,
        Nq, Nk) or (B or 1, H or 1, Nq, Nk), as `kernels.attention` takes it."""
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
        if mask.dim() not in (2, 3, 4):
            raise ValueError(f"mask must have rank 2, 3 or 4 (..., Nq, Nk), got shape {tuple(mask.shape)}")
        if mask.dtype != torch.bool and not mask.dtype.is_floating_point:
            raise TypeError(f"mask must be bool (True = attend) or floating point (added), got dtype {mask.dtype}")
        rank4 = mask[(None,) * (4 - mask.dim())]  # a view, never a copy: its map is the mask's own
        return cls(mask, tile_states(rank4))

    def sparsity(self) -> float:
        """The fraction of map tiles that no score attends (EMPTY), which the kernels never visit."""
        return (self.states == EMPTY).float().mean().item()

    def __repr__(self) -> str:
        counts = {name: int((self.states == value).sum()) for name, value in
                  (("empty", EMPTY), ("full", FULL), ("partial", PARTIAL))}
        return (f"BlockMask(shape={tuple(self.mask.shape)}, block_size={self.block_size}, "
                + ", ".join(f"{name}={count}" for name, count in counts.items()) + ")")
