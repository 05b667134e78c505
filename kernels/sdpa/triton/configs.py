"""Tile configurations for the attention forward, backward and decode kernels, kept as data.

Each entry is a candidate the autotuner may time on a GPU. `max_head_dim` prunes tiles whose
Q/K/V blocks would not fit shared memory (or spill registers) at large head dims, so a d256 call
does not waste compile time on 128x128 tiles. Chosen for Hopper (H100/H200): large tiles, 3-4
stage software pipelines, 8 warps for the 128-row tiles.
"""
import os
from dataclasses import dataclass

import triton

# KERNELS_AUTOTUNE=0 skips the timing of candidate tiles and takes the most general one (valid up
# to head dim 256): for test runs on a GPU, which compile hundreds of variants and time none.
AUTOTUNE = os.environ.get("KERNELS_AUTOTUNE", "1") != "0"


@dataclass(frozen=True)
class TileConfig:
    block_m: int
    block_n: int
    num_warps: int
    num_stages: int
    max_head_dim: int

    def to_triton(self) -> triton.Config:
        return triton.Config(
            {"BLOCK_M": self.block_m, "BLOCK_N": self.block_n},
            num_warps=self.num_warps,
            num_stages=self.num_stages,
        )


FORWARD_TILES = [
    TileConfig(128, 128, num_warps=8, num_stages=3, max_head_dim=64),
    TileConfig(128, 64, num_warps=4, num_stages=4, max_head_dim=64),
    TileConfig(128, 128, num_warps=8, num_stages=2, max_head_dim=128),
    TileConfig(128, 64, num_warps=8, num_stages=3, max_head_dim=128),
    TileConfig(64, 64, num_warps=4, num_stages=3, max_head_dim=128),
    TileConfig(64, 64, num_warps=4, num_stages=2, max_head_dim=256),
    TileConfig(64, 32, num_warps=4, num_stages=2, max_head_dim=256),
]

# Backward tiles: the dK/dV kernel owns BLOCK_N keys and streams BLOCK_M queries, the dQ kernel
# the other way round; each kernel is tuned separately from this one list.
BACKWARD_TILES = [
    TileConfig(32, 128, num_warps=4, num_stages=3, max_head_dim=128),
    TileConfig(64, 128, num_warps=8, num_stages=2, max_head_dim=128),
    TileConfig(128, 32, num_warps=4, num_stages=3, max_head_dim=128),
    TileConfig(128, 64, num_warps=8, num_stages=2, max_head_dim=128),
    TileConfig(64, 64, num_warps=4, num_stages=2, max_head_dim=256),
    TileConfig(32, 64, num_warps=4, num_stages=2, max_head_dim=256),
    TileConfig(64, 32, num_warps=4, num_stages=2, max_head_dim=256),
]


@dataclass(frozen=True)
class DecodeTile:
    """A tile of the split-K decode kernel (decode.py). Only BLOCK_N (keys per step) is
    tuned: BLOCK_M is sized by the launcher to the rows of one GQA group, see DECODE_BLOCK_M."""

    block_n: int
    num_warps: int
    num_stages: int
    max_head_dim: int

    def to_triton(self) -> triton.Config:
        return triton.Config({"BLOCK_N": self.block_n}, num_warps=self.num_warps, num_stages=self.num_stages)


# Decode reads each key and value once and does little math per byte: long key tiles and deep
# pipelines keep enough loads in flight to saturate HBM. Untimed on a GPU so far.
DECODE_TILES = [
    DecodeTile(128, num_warps=4, num_stages=3, max_head_dim=128),
    DecodeTile(128, num_warps=8, num_stages=3, max_head_dim=128),
    DecodeTile(64, num_warps=4, num_stages=4, max_head_dim=128),
    DecodeTile(64, num_warps=4, num_stages=3, max_head_dim=256),
    DecodeTile(32, num_warps=4, num_stages=3, max_head_dim=256),
]

# fp64 (for exact checks and gradcheck, not speed) takes this one tile untimed: Triton 3.6 fails to
# compile the 128-key, 3-stage tiles in fp64 for sm_90 (ConvertTritonGPUToLLVM), and one stage keeps
# fp64's shared memory small up to head dim 256.
DECODE_FP64_TILE = DecodeTile(32, num_warps=4, num_stages=1, max_head_dim=256)

# (smallest, largest) BLOCK_M of the decode kernel: tl.dot needs 16 rows; a group of group_size x Nq
# rows larger than the largest takes several query blocks.
DECODE_BLOCK_M = (16, 64)

# The interpreter runs one config, no timing. Small and unequal tiles make the tests cross tile
# boundaries and exercise blocks that straddle two tiles on the causal diagonal.
INTERPRETER_FORWARD_TILE = TileConfig(32, 16, num_warps=4, num_stages=1, max_head_dim=256)
INTERPRETER_BACKWARD_TILE = TileConfig(16, 32, num_warps=4, num_stages=1, max_head_dim=256)
# Short key tiles so that a few dozen keys already make several splits; rows capped at 32 so that
# small tests cover a GQA group spread over two query blocks.
INTERPRETER_DECODE_TILE = DecodeTile(16, num_warps=4, num_stages=1, max_head_dim=256)
INTERPRETER_DECODE_BLOCK_M = (16, 32)


def autotune_configs(
    tiles: list[TileConfig | DecodeTile], interpreter_tile: TileConfig | DecodeTile, interpreting: bool
) -> list[triton.Config]:
    if interpreting:
        return [interpreter_tile.to_triton()]
    if not AUTOTUNE:
        return [max(tiles, key=lambda tile: tile.max_head_dim).to_triton()]
    return [tile.to_triton() for tile in tiles]


def head_dim_pruner(tiles: list[TileConfig | DecodeTile]):
    """Autotuner hook: only the tiles that fit this call's padded head dim are timed."""

    def prune(configs, named_args, **kwargs):
        args = {**named_args, **kwargs}
        head_dim = max(args["BLOCK_D"], args["BLOCK_DV"])
        return [tile.to_triton() for tile in tiles if head_dim <= tile.max_head_dim]

    return prune
