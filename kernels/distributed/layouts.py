"""How a sequence is cut into chunks and which chunks each rank holds.

- "contiguous": W chunks, rank r holds chunk r. Simple, but under a causal mask rank W-1 attends
  to W times more keys than rank 0.
- "zigzag": 2W chunks, rank r holds chunks r and 2W-1-r (in that order), so every rank has one
  early and one late chunk and causal work is the same on every rank.

Every chunk has the same length, so the sequence length must divide into them; the local tensor of
a rank is its chunks concatenated along the sequence dim.
"""
import torch
import torch.distributed as dist

from kernels.distributed.communication import all_gather
from kernels.distributed.groups import group_info

LAYOUTS = ("contiguous", "zigzag")


def check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def chunk_count(world_size: int, layout: str) -> int:
    """How many equal chunks the whole sequence is cut into."""
    check_layout(layout)
    return world_size if layout == "contiguous" else 2 * world_size


def rank_chunks(rank: int, world_size: int, layout: str) -> tuple[int, ...]:
    """The global chunk indices rank `rank` holds, in the order of its local tensor."""
    check_layout(layout)
    return (rank,) if layout == "contiguous" else (rank, 2 * world_size - 1 - rank)


def check_divisible(length: int, world_size: int, layout: str, name: str = "the sequence") -> int:
    """The chunk length; a clear error when `length` does not split into equal chunks."""
    chunks = chunk_count(world_size, layout)
    if length % chunks != 0:
        raise ValueError(
            f"{name} length {length} does not split into the {chunks} equal chunks the {layout!r} layout needs "
            f"on {world_size} ranks: pad it with kernels.distributed.pad_for_sharding and pass the mask of real "
            "positions it returns as key_padding"
        )
    return length // chunks


def local_chunk_length(local_length: int, layout: str) -> int:
    """The chunk length of a rank's local tensor of `local_length` positions."""
    per_rank = len(rank_chunks(0, 1, layout))
    if local_length % per_rank != 0:
        raise ValueError(f"a rank's local sequence length must be a multiple of {per_rank} in the {layout!r} layout "
                         f"(it holds {per_rank} equal chunks), got {local_length}")
    return local_length // per_rank


def global_positions(local_length: int, rank: int, world_size: int, layout: str,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """The global sequence index (local_length,) of each position of rank `rank`'s local tensor."""
    chunks = rank_chunks(rank, world_size, layout)
    chunk_length = local_chunk_length(local_length, layout)
    return torch.cat([torch.arange(c * chunk_length, (c + 1) * chunk_length, device=device) for c in chunks])


def pad_for_sharding(x: torch.Tensor, dim: int = 2, group: "dist.ProcessGroup | None" = None,
                     layout: str = "zigzag") -> tuple[torch.Tensor, torch.Tensor]:
    """(x zero-padded at the end of `dim` to the next length that shards, real (N_padded,) bool: True
    on x's own positions), for lengths the layout cannot split. Pass `real` (and-ed with any padding
    mask of your own, broadcast to (B, N_padded)) as key_padding, so no query attends a pad, and drop
    the padded rows after unsharding; under a causal mask the pads, being last, are never attended."""
    info = group_info(group)
    dim = _checked_dim(x, dim)
    chunks = chunk_count(info.world_size, layout)
    length = x.size(dim)
    padded_length = -(-length // chunks) * chunks
    pad = [0, 0] * (x.dim() - 1 - dim) + [0, padded_length - length]
    real = torch.arange(padded_length, device=x.device) < length
    return torch.nn.functional.pad(x, pad), real


def shard_sequence(x: torch.Tensor, dim: int = 2, group: "dist.ProcessGroup | None" = None,
                   layout: str = "zigzag") -> torch.Tensor:
    """This rank's part of the full tensor `x` along `dim` (a view when the layout has one chunk per
    rank, else a copy of its two chunks). Every rank passes the same full tensor."""
    info = group_info(group)
    dim = _checked_dim(x, dim)
    check_divisible(x.size(dim), info.world_size, layout, name=f"x.size({dim})")
    return local_in_layout_order(x, dim, info.rank, info.world_size, layout)


def unshard_sequence(x_local: torch.Tensor, dim: int = 2, group: "dist.ProcessGroup | None" = None,
                     layout: str = "zigzag") -> torch.Tensor:
    """The full tensor from every rank's part along `dim` (an all-gather; not differentiable)."""
    info = group_info(group)
    dim = _checked_dim(x_local, dim)
    return gathered_in_sequence_order(all_gather(x_local, info), dim, info.world_size, layout)


def gathered_in_sequence_order(parts: list[torch.Tensor], dim: int, world_size: int, layout: str) -> torch.Tensor:
    """The full sequence from the local tensors of ranks 0..W-1 (`parts`), chunks put back in place."""
    n_chunks = chunk_count(world_size, layout)
    chunk_length = local_chunk_length(parts[0].size(dim), layout)
    chunks: list[torch.Tensor | None] = [None] * n_chunks
    for rank, part in enumerate(parts):
        for slot, c in enumerate(rank_chunks(rank, world_size, layout)):
            chunks[c] = part.narrow(dim, slot * chunk_length, chunk_length)
    return torch.cat(chunks, dim=dim)


def local_in_layout_order(full: torch.Tensor, dim: int, rank: int, world_size: int, layout: str) -> torch.Tensor:
    """Rank `rank`'s local tensor cut from the full sequence `full` (the inverse of gathering)."""
    chunk_length = check_divisible(full.size(dim), world_size, layout)
    parts = [full.narrow(dim, c * chunk_length, chunk_length) for c in rank_chunks(rank, world_size, layout)]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=dim)


def _checked_dim(x: torch.Tensor, dim: int) -> int:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not -x.dim() <= dim < x.dim():
        raise ValueError(f"dim {dim} is out of range for a tensor of rank {x.dim()}")
    return dim % x.dim()
