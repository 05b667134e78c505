"""Tile configurations for the attention forward, backward and decode kernels, kept as data.

Each kernel has one list of candidate tiles per input dtype family (`TileSet`): 16-bit inputs run
their dots on tensor cores, float32 inputs as three TF32 tensor-core dots by default
(common.fp32_dot_precision) and float64 on DMMA or FFMA, so each family has its own register and
shared-memory budget. Every list holds, for every head dim up to 256, tiles that compile, fit the
per-block shared memory of sm_80/sm_90/sm_100 and do not spill (float64, for exact checks and
gradcheck, need only launch; the compile gate's known breaks would list the exceptions, none today):
`python -m benchmarks compile` shows it and tests/compile/test_compile_gate.py keeps it so (causal,
and for the backward uneven lengths, packed sequences and the score variants too, where tiles that would
spill are pruned: TileConfig.spills_with, and a tile for those launches alone: TileConfig.only_with;
docs/benchmarks/compile.md lists what is left).
`max_head_dim` prunes the tiles too big for a call's padded head dim (`min_head_dim` those kept
for large head dims only). 16-bit tiles are chosen for
Hopper (H100/H200): warpgroup MMA (HGMMA) needs 64-row dot operands per 4 warps, so every 16-bit
tile gives the rows its kernel owns (queries in the forward and dQ, keys in dK/dV), which are the
rows of its dots, 64 or more.
"""
import contextlib
import contextvars
import os
from dataclasses import dataclass

import torch
import triton

from kernels.sdpa.triton.descriptors import device_capability
from kernels.sdpa.triton.score_variants import VARIANT_FLAGS
from kernels.shared.switches import switched

# KERNELS_AUTOTUNE=0 skips the timing of candidate tiles and takes, untimed, the first tile of the
# dtype's list that fits the head dim (lists are in order of preference): for test runs on a GPU,
# which compile hundreds of variants. Read when a kernel is first called with a new key.
AUTOTUNE = os.environ.get("KERNELS_AUTOTUNE", "1") != "0"

# Launch traits that raise a kernel's register pressure past its causal peak, which the compile gate
# measures (TileConfig.spills_with: the pruner drops a tile for a launch with a trait it lists, or
# with every trait of a tuple it lists: traits that spill only together).
# UNEVEN: packed sequences, or lengths that are not multiples of ALIGNED_LENGTH (the longest side of
# every backward tile): loads and scores are bounds-checked (EVEN_M/EVEN_N off). The backward
# kernels, whose tiles list it, take `aligned_lengths` in their autotune key (backward.py).
# PACKED: packed sequences (the forward and backward kernels' VARLEN; for the backward also UNEVEN).
# SCORE_VARIANTS: a soft cap, ALiBi, sinks or a window. DROPOUT: dropout (its Philox bits drawn in
# every tile). BLOCK_MAP: a dense mask's block map (SPARSE_BLOCK, kernels/sdpa/block_mask.py: the tile
# list's entry and the FULL-tile predicate). KEY_RANGE: a key-padding mask's span of real keys
# (USE_KEY_RANGE: the forward's key loop starts and ends at the span). BLACKWELL: the launch's GPU is sm_100 or later
# (target_capability), whose compiler allocates registers differently: an entry pairing it with
# another trait prunes a tile there only. HOPPER: likewise, sm_90 (HGMMA, where warpgroup MMA keeps
# its accumulators in registers). TileConfig.only_with lists traits the other way round: a tile
# kept only for launches with them.
UNEVEN = "uneven"
PACKED = "packed"
SCORE_VARIANTS = "score_variants"
DROPOUT = "dropout"
BLOCK_MAP = "block_map"
KEY_RANGE = "key_range"
BLACKWELL = "blackwell"
HOPPER = "hopper"
TRAITS = (UNEVEN, PACKED, SCORE_VARIANTS, DROPOUT, BLOCK_MAP, KEY_RANGE, BLACKWELL, HOPPER)
ALIGNED_LENGTH = 64
_HOPPER_CAPABILITY = 90
_BLACKWELL_CAPABILITY = 100

# The compute capability the compile report records launches for (compiling_for), else None: the
# launch's own device decides.
_compiling_for: contextvars.ContextVar[int | None] = contextvars.ContextVar("compiling_for", default=None)


def target_capability(query: torch.Tensor) -> int:
    """The compute capability (major x 10 + minor) a launch on `query` compiles for: the one
    `compiling_for` sets, else its CUDA device's, else 0 (the CPU: the interpreter)."""
    forced = _compiling_for.get()
    if forced is not None:
        return forced
    return device_capability(query.device) if query.is_cuda else 0


def compiling_for(capability: int) -> contextlib.AbstractContextManager:
    """Inside the block the pruners choose tiles for a GPU of this compute capability, whatever the
    tensors' device (the compile report records CPU launches for sm_80, sm_90 and sm_100)."""
    return switched(_compiling_for, capability, kind=int, name="capability")


def launch_has(trait: str, args: dict) -> bool:
    """Whether the launch whose kernel arguments are `args` has `trait` (one of TRAITS)."""
    if trait == UNEVEN:
        return not args["aligned_lengths"]
    if trait == PACKED:
        return bool(args["VARLEN"])
    if trait == SCORE_VARIANTS:
        return any(args[flag] for flag in VARIANT_FLAGS)
    if trait == DROPOUT:
        return bool(args["USE_DROPOUT"])
    if trait == BLOCK_MAP:
        return bool(args["SPARSE_BLOCK"])
    if trait == KEY_RANGE:
        return bool(args["USE_KEY_RANGE"])
    if trait == BLACKWELL:
        return target_capability(args["q_ptr"]) >= _BLACKWELL_CAPABILITY
    if trait == HOPPER:
        return _HOPPER_CAPABILITY <= target_capability(args["q_ptr"]) < _BLACKWELL_CAPABILITY
    raise ValueError(f"unknown launch trait {trait!r}: expected one of {TRAITS}")


def spill_traits(entry: str | tuple[str, ...]) -> tuple[str, ...]:
    """The traits of one `spills_with` entry: a trait alone, or a tuple of traits that spill together."""
    return (entry,) if isinstance(entry, str) else entry


def _launch_matches(entries: tuple[str | tuple[str, ...], ...], args: dict) -> bool:
    """Whether the launch whose kernel arguments are `args` has every trait of one of `entries`
    (a `spills_with` or `only_with` list)."""
    return any(all(launch_has(trait, args) for trait in spill_traits(entry)) for entry in entries)


def kept_for_launch(tile, args: dict) -> bool:
    """Whether the traits of the launch whose kernel arguments are `args` keep `tile`: it does not spill
    with them, and has any `only_with` entry they match (a tile without one is kept for every launch)."""
    return not _launch_matches(tile.spills_with, args) and (not tile.only_with or _launch_matches(tile.only_with, args))


@dataclass(frozen=True)
class TileConfig:
    block_m: int
    block_n: int
    num_warps: int
    num_stages: int
    max_head_dim: int
    min_head_dim: int = 16  # above 16: a tile kept for large head dims only, where nothing better fits
    # launch traits (TRAITS) for which this tile spills, pruned then: a trait, or a tuple of traits together
    spills_with: tuple[str | tuple[str, ...], ...] = ()
    # entries like spills_with's: the tile is kept only for a launch that matches one (none: for every launch)
    only_with: tuple[str | tuple[str, ...], ...] = ()
    # dK/dV only: programs sharing a key block, each with its share of dK's and dV's columns (COLUMN_SPLITS
    # of backward._attention_backward_dk_dv_kernel)
    column_splits: int = 1

    def to_triton(self) -> triton.Config:
        splits = {"COLUMN_SPLITS": self.column_splits} if self.column_splits > 1 else {}
        return triton.Config(
            {"BLOCK_M": self.block_m, "BLOCK_N": self.block_n, **splits},
            num_warps=self.num_warps,
            num_stages=self.num_stages,
        )


@dataclass(frozen=True)
class DecodeTile:
    """A tile of the split-K decode kernel (decode.py). Only BLOCK_N (keys per step) is tuned:
    BLOCK_M is sized by the launcher to the rows of one GQA group, see DECODE_BLOCK_M."""

    block_n: int
    num_warps: int
    num_stages: int
    max_head_dim: int
    min_head_dim: int = 16
    spills_with: tuple[str | tuple[str, ...], ...] = ()  # as TileConfig's (none uses it yet)
    only_with: tuple[str | tuple[str, ...], ...] = ()  # as TileConfig's (none uses it)
    column_splits: int = 1  # the decode kernel takes none

    def to_triton(self) -> triton.Config:
        return triton.Config({"BLOCK_N": self.block_n}, num_warps=self.num_warps, num_stages=self.num_stages)


Tile = TileConfig | DecodeTile


@dataclass(frozen=True)
class TileSet:
    """One kernel's candidate tiles per input dtype family, each list in order of preference (or, for
    DECODE_MAX_ROWS, other per-family data)."""

    half: tuple[Tile, ...]  # float16 and bfloat16
    single: tuple[Tile, ...]  # float32
    double: tuple[Tile, ...]  # float64

    def for_dtype(self, dtype: torch.dtype) -> tuple[Tile, ...]:
        if dtype == torch.float64:
            return self.double
        return self.single if dtype == torch.float32 else self.half

    def candidates(self) -> list[triton.Config]:
        """Every tile of every family once: the autotuner's config list, which the pruner narrows."""
        return list(dict.fromkeys(tile.to_triton() for tile in (*self.half, *self.single, *self.double)))

# Measured with `python -m benchmarks compile` (benchmarks/results/compile/): registers, spills and
# shared memory on sm_80 and sm_90 at the variants with the highest register and shared-memory peaks
# (causal, dropout, key padding, additive mask).
FORWARD_TILES = TileSet(
    # 128x128 stops at d64: at d128 it spills on sm_80 with an additive mask (255 registers). (Its causal
    # peak on sm_90, 252 registers when the causal key loop was instantiated twice, no longer applies:
    # one loop now, see docs/benchmarks/compile.md; 128x128 at d128 is worth compiling again.) With
    # dropout 128x128 at d64 holds 255 registers and spills 140 bytes on sm_90, 424 on sm_100 (and 8
    # on sm_80 with the score variants too), 128x64 at d128 4 bytes on sm_90 (255 registers); 64x64
    # spills nowhere with it. 128x64 at d128 with the score variants spills 16 bytes on sm_100 only,
    # and with a key-padding span 4 bytes on sm_100 (ptxas holds it to 128 registers and parks one
    # value; shared memory allows one block per SM there anyway).
    half=(
        TileConfig(128, 64, num_warps=8, num_stages=3, max_head_dim=64),
        TileConfig(128, 64, num_warps=8, num_stages=3, max_head_dim=128, min_head_dim=128,
                   spills_with=(DROPOUT, (SCORE_VARIANTS, BLACKWELL), (KEY_RANGE, BLACKWELL))),
        TileConfig(128, 128, num_warps=8, num_stages=3, max_head_dim=64, spills_with=(DROPOUT,)),
        TileConfig(64, 64, num_warps=4, num_stages=3, max_head_dim=128),
        # On packed sequences at d64 on sm_100 64x32 spills 4 bytes (72 registers): ptxas parks one
        # sequence-length value across the device-side TMA descriptor set-up (STL once, LDL twice), not
        # register pressure; d128 and d256 do not spill.
        TileConfig(64, 32, num_warps=4, num_stages=2, max_head_dim=64, spills_with=((PACKED, BLACKWELL),)),
        TileConfig(64, 32, num_warps=4, num_stages=2, max_head_dim=256, min_head_dim=128),
    ),
    # fp32 dots run as three TF32 dots by default (common.fp32_dot_precision): 32x32 compiles spill-free
    # at d64 on sm_80 and sm_90; larger fp32 tiles are still to be tried in the report.
    single=(
        TileConfig(32, 32, num_warps=4, num_stages=2, max_head_dim=64),
        # Above d64 only 16-row tiles keep both TF32 halves of q and the accumulator in registers: 32x32
        # spills 0.5-1.5 KB at d128 (causal with one key loop; key padding on the TMA path), 16x32 none
        # for any variant on sm_80/sm_90. At d256 16x32 spilled 1.6 KB a thread on sm_90 until the
        # scores read q and k in head-dim chunks (common.head_dim_chunk): spill-free, <= 252 registers.
        TileConfig(16, 32, num_warps=4, num_stages=2, max_head_dim=256, min_head_dim=128),
    ),
    # fp64 (exact checks, gradcheck) must launch, not be fast: one stage keeps its shared memory small.
    double=(TileConfig(32, 32, num_warps=4, num_stages=1, max_head_dim=256),),
)

# Backward tiles, one list per kernel: the dK/dV kernel owns BLOCK_N keys and streams BLOCK_M
# queries, the dQ kernel the other way round. dK/dV holds two BLOCK_N x D fp32 accumulators:
# 8 warps (64x64 on 4 warps spills with dropout), no 128-row tile (dK/dV spills on sm_80 at d64 when
# causal, dQ at d128). HGMMA takes 64-row operands per 4 warps, and every dot of a kernel can take its
# rows from the side the kernel owns (dK/dV computes the scores keys first when BLOCK_M < BLOCK_N,
# backward.scores_keys_first), so at d256 each kernel owns 64 rows and streams a short tile of the
# other side, on 8 warps: 64 keys x 16 queries on 3 stages for dK/dV (its accumulators take 128
# registers a thread; 32 queries spill 8-124 bytes on sm_80 with a mask, one stage 260-550 bytes
# anywhere, 2 stages 12 bytes on packed sequences on sm_90), 64 queries x 32 keys for dQ (64x16 on
# 4 warps spills 316 bytes causal on sm_90, one stage spills).
_BACKWARD_DK_DV_SINGLE = (
    # fp32 dots as three TF32 dots (tf32x3) hold each operand twice (high and low TF32 halves), in
    # HMMA operand layouts where every warp holds its rows' whole head dim: 16-row tiles only. 32x32
    # spills in dK/dV at every head dim (2.7 KB a thread on sm_90, 21 KB on sm_80), 32x16 and 32x32 on
    # 8 warps at d128. 16x32 is spill-free at d64 (<= 227 registers), 16x16 on one stage at d128
    # (<= 255; uneven lengths spill 8-12 bytes, hence 16x16 on 8 warps there, see below; dQ,
    # which spilled on both, has its own list below). Above d128 the score dots read their
    # operands in head-dim chunks (common.head_dim_chunk); what is left is dK and dV (16 x 256 fp32
    # each) and the whole q or dO tile of the gradient dots: 16x16 on 4 warps still reached 255
    # registers and spilled 16-300 bytes with key padding, on 8 warps it peaks at 222 (causal).
    # At d128 16x16 on 8 warps runs 2 stages: on one it spilled 8 bytes with a bool mask on sm_90; on 2
    # no variant spills on sm_80/sm_90/sm_100 (224-255 registers).
    TileConfig(16, 32, num_warps=4, num_stages=2, max_head_dim=64),
    TileConfig(16, 16, num_warps=4, num_stages=1, max_head_dim=128, spills_with=(UNEVEN,)),
    TileConfig(16, 16, num_warps=8, num_stages=2, max_head_dim=128, min_head_dim=128),
    TileConfig(16, 16, num_warps=8, num_stages=1, max_head_dim=256, min_head_dim=256),
)
# dQ's own fp32 tiles: at d128 16 queries x 32 keys on 4 warps, one stage, is spill-free with every mask
# kind, uneven lengths and packed sequences on sm_80/sm_90/sm_100 (252-255 registers), where 16x16 on 8
# warps spilled 4-20 bytes with key padding or a mask and 16x16 on 4 warps 20 bytes with a bool mask
# on sm_80.
_BACKWARD_DQ_SINGLE = (
    TileConfig(16, 32, num_warps=4, num_stages=2, max_head_dim=64),
    TileConfig(16, 32, num_warps=4, num_stages=1, max_head_dim=128, min_head_dim=128),
    TileConfig(16, 16, num_warps=8, num_stages=1, max_head_dim=256, min_head_dim=256),
)
# fp64 (launchable is enough): 16x16, one stage; at d256 dK/dV re-reads q and dO to fit the A100
# (backward.rereads_query_tiles).
_BACKWARD_DOUBLE = (TileConfig(16, 16, num_warps=4, num_stages=1, max_head_dim=256),)
# 16-bit dK/dV at d256 on sm_90 with the score variants and uneven lengths or dropout: the column split
_DK_DV_COLUMN_SPLIT_TRAITS = ((SCORE_VARIANTS, UNEVEN, HOPPER), (SCORE_VARIANTS, DROPOUT, HOPPER))
BACKWARD_DK_DV_TILES = TileSet(
    # 64x64 holds 255 registers at d64 on sm_80 and at d128 on sm_90 (causal): uneven lengths spill
    # 16-72 bytes there (12-20 on sm_80 at d64), the score variants 24-44 at d128 (a soft cap alone
    # 24), dropout 20 bytes at d64 on sm_80 and 28 at d128 on sm_90 (136 on 3 stages). 32 queries x
    # 64 keys (keys first, still HGMMA) takes at most 244 registers for all of them, but for the score
    # variants with dropout at d128 on sm_100 (4 bytes at 128 registers): 16 queries take
    # those (at most 194 registers at d128, no spill with any variant on sm_80/sm_90/sm_100).
    # At d128 64x64 runs 3 stages: on 2, bf16 spilled 12 bytes on sm_100 with an additive mask and
    # fp16/bf16 4 with a bool mask; 3 stages spill nowhere 2 did not (sm_90 registers -2 to +3,
    # 137-153 KiB of shared memory instead of 104-112, one block per SM either way). At d256 16x64
    # runs 3 stages: on 2 it spilled 12 bytes on packed sequences on sm_90; on 3 that ends (255
    # registers at most, 98-116 KiB instead of 82-100), but on sm_90 all four score variants still
    # spilled 4 bytes with uneven lengths and 72 with dropout (2 or 4 stages more; no other tile keeps
    # HGMMA): there two programs share each key block, each holding half of dK's and dV's columns
    # (column_splits=2: 64 accumulator registers instead of 128, 213 and 248 registers in all, no
    # spill), at 1.5 times the dots (each recomputes the scores and dP). sm_80 and sm_100 do not
    # spill there (at most 240 registers, 150) and keep the whole columns.
    # With a block map 64x64 at d128 spilled 4 bytes in bf16 with an additive mask on sm_90 (255
    # registers): 32x64 takes those calls. On packed sequences on sm_100 32x64 at d128 spills 4 bytes
    # (80 registers: one scalar kept in local memory across the key loop, reloaded once after it):
    # 16x64 takes those.
    half=(
        TileConfig(64, 64, num_warps=8, num_stages=2, max_head_dim=64, spills_with=(UNEVEN, DROPOUT)),
        TileConfig(64, 64, num_warps=8, num_stages=3, max_head_dim=128, min_head_dim=128,
                   spills_with=(UNEVEN, SCORE_VARIANTS, DROPOUT, BLOCK_MAP)),
        TileConfig(32, 64, num_warps=8, num_stages=2, max_head_dim=64),
        TileConfig(32, 64, num_warps=8, num_stages=2, max_head_dim=128, min_head_dim=128,
                   spills_with=((SCORE_VARIANTS, DROPOUT), (PACKED, BLACKWELL))),
        TileConfig(16, 64, num_warps=8, num_stages=3, max_head_dim=128, min_head_dim=128),
        TileConfig(16, 64, num_warps=8, num_stages=3, max_head_dim=256, min_head_dim=256,
                   spills_with=_DK_DV_COLUMN_SPLIT_TRAITS),
        TileConfig(16, 64, num_warps=8, num_stages=3, max_head_dim=256, min_head_dim=256, column_splits=2,
                   only_with=_DK_DV_COLUMN_SPLIT_TRAITS),
    ),
    single=_BACKWARD_DK_DV_SINGLE,
    double=_BACKWARD_DOUBLE,
)
BACKWARD_DQ_TILES = TileSet(
    # 64x64 at d64 on sm_80 holds 255 registers with a window alone and spills 92 bytes with all four
    # score variants and causal: 64 queries x 32 keys takes those calls. On 2 stages that tile (and
    # 64x64 at d128) spilled 4 bytes with key padding on sm_80, and 64x64 on one stage at d128 4 bytes
    # on sm_100; 3 stages of 64x32 (at most 218 registers) spill nowhere, HGMMA on sm_90: the d128 tile.
    # At d256 64x32 with all four score variants and dropout spilled 80 bytes on sm_90 (255 registers;
    # 92 on 3 stages, 468 on one) and 4 on sm_100: 64 queries x 16 keys takes those calls (252
    # registers on sm_90, HGMMA; 255 on sm_80, 185 on sm_100; no spill).
    half=(
        TileConfig(64, 64, num_warps=8, num_stages=2, max_head_dim=64, spills_with=(SCORE_VARIANTS,)),
        TileConfig(64, 32, num_warps=8, num_stages=3, max_head_dim=128),
        TileConfig(64, 32, num_warps=8, num_stages=2, max_head_dim=256, min_head_dim=256,
                   spills_with=((SCORE_VARIANTS, DROPOUT),)),
        TileConfig(64, 16, num_warps=8, num_stages=2, max_head_dim=256, min_head_dim=256,
                   only_with=((SCORE_VARIANTS, DROPOUT),)),
    ),
    single=_BACKWARD_DQ_SINGLE,
    double=_BACKWARD_DOUBLE,
)

# Decode reads each key and value once and does little math per byte: long key tiles and deep
# pipelines keep enough loads in flight to saturate HBM. Untimed on a GPU so far.
# Occupancy: decode.choose_num_splits sizes the split grid for PROGRAMS_PER_MULTIPROCESSOR (2) programs
# per SM, so every tile leaves room for 2 blocks per SM on sm_90 (tests/compile keeps it so). Shared
# memory is about (stages - 1) x BLOCK_N x (D + Dv) x 2 bytes for 16-bit inputs: 140 KiB for 64 keys
# on 3 stages at d256 or 128 keys at d128 (1 block per SM), hence the head-dim caps below; the
# 4-stage tile stops at d64, where it fits twice on sm_80's 164 KiB too (105 KiB at d128 does not).
DECODE_TILES = TileSet(
    half=(
        DecodeTile(64, num_warps=4, num_stages=3, max_head_dim=128),
        # 128 keys on 4 warps spill 8 bytes on sm_80 at d128 with a key-padding mask: 8 warps only.
        DecodeTile(128, num_warps=8, num_stages=3, max_head_dim=64),
        DecodeTile(64, num_warps=4, num_stages=4, max_head_dim=64),
        DecodeTile(32, num_warps=4, num_stages=3, max_head_dim=256),
    ),
    # fp32 at d256: spill-free (<= 246 registers) with the scores in head-dim chunks (common.head_dim_chunk).
    single=(DecodeTile(32, num_warps=4, num_stages=2, max_head_dim=256),),
    # Triton 3.6 fails to compile the 128-key, 3-stage tiles in fp64 for sm_90 (ConvertTritonGPUToLLVM);
    # one stage keeps fp64's shared memory small up to head dim 256.
    double=(DecodeTile(32, num_warps=4, num_stages=1, max_head_dim=256),),
)


# (smallest, largest) BLOCK_M of the decode kernel: tl.dot needs 16 rows; a group of group_size x Nq
# rows larger than the largest takes several query blocks.
DECODE_BLOCK_M = (16, 64)
# The largest decode BLOCK_M per dtype family and head dim, as (max head dim, rows) steps: a taller
# tile (a big GQA group, or several queries a step) holds more score and output rows in registers.
# Measured with a key-padding mask on sm_80/sm_90 (`python -m benchmarks compile --variants
# wide_group`): 64 rows spill from fp32 d128 (32 B on sm_90, 1.3 KB on sm_80; 32 rows still 12 B) and
# 16-bit d256 (16 B on sm_80; 32 rows none, two blocks per sm_90 SM); fp32 d256 spills 0.6-2.1 KB with
# 32 or 64 rows, and fp64 d256 on 64 rows does not fit an A100 block at all.
DECODE_MAX_ROWS = TileSet(half=((128, 64), (256, 32)), single=((64, 64), (256, 16)), double=((64, 64), (256, 16)))

# The largest padded head dim at which the forward and backward kernels skip tiles by a block map
# (kernels/sdpa/block_mask.py), per dtype family. The map's FULL tiles predicate the mask's load off,
# which costs registers: float32 past d64 has none to spare in the backward (dQ 16x32 at d128 with an
# additive mask spilled 20 bytes on sm_90 with a map, none without), so float32 masks of larger head
# dims are read whole, tile by tile, as without a map.
BLOCK_MAP_MAX_HEAD_DIM = TileSet(half=256, single=64, double=256)

# The interpreter runs one config, no timing. Small and unequal tiles make the tests cross tile
# boundaries and exercise blocks that straddle two tiles on the causal diagonal.
INTERPRETER_FORWARD_TILE = TileConfig(32, 16, num_warps=4, num_stages=1, max_head_dim=256)
INTERPRETER_BACKWARD_TILE = TileConfig(16, 32, num_warps=4, num_stages=1, max_head_dim=256)
# Short key tiles so that a few dozen keys already make several splits; rows capped at 32 so that
# small tests cover a GQA group spread over two query blocks.
INTERPRETER_DECODE_TILE = DecodeTile(16, num_warps=4, num_stages=1, max_head_dim=256)
INTERPRETER_DECODE_BLOCK_M = (16, 32)


def autotune_configs(tiles: TileSet, interpreter_tile: Tile, interpreting: bool) -> list[triton.Config]:
    """The interpreter's one tile, else every candidate: more than one, so that the autotuner always
    asks the pruner (head_dim_pruner), which picks by dtype and head dim."""
    if interpreting:
        return [interpreter_tile.to_triton()]
    return tiles.candidates()


def head_dim_pruner(tiles: TileSet):
    """Autotuner hook: the tiles of the call's dtype that fit its padded head dims (each column split at
    least 16 wide) and that its traits keep (kept_for_launch), all of them to be timed, or with
    KERNELS_AUTOTUNE=0 the first one alone. Where the traits keep none, every tile that fits the head
    dims is kept: the traits prune a tile for the column split that replaces it, which a head dim too
    narrow to split cannot take (16-bit D 256 with Dv 16, whose dV accumulator is small anyway)."""

    def prune(configs, named_args, **kwargs):
        args = {**named_args, **kwargs}
        head_dim = max(args["BLOCK_D"], args["BLOCK_DV"])
        fitting = [tile for tile in tiles.for_dtype(args["q_ptr"].dtype)
                   if tile.min_head_dim <= head_dim <= tile.max_head_dim
                   and min(args["BLOCK_D"], args["BLOCK_DV"]) // tile.column_splits >= 16]
        kept = [tile.to_triton() for tile in fitting if kept_for_launch(tile, args)] or [
            tile.to_triton() for tile in fitting]
        return kept if AUTOTUNE else kept[:1]

    return prune
