"""The tile lists as data: every dtype family has a tile for every head dim the kernels take, with
or without the launch traits that prune tiles (configs.TRAITS), and the pruner picks by dtype, head
dim and traits (all fitting tiles to time, or the first one untimed).
What the tiles compile to is tests/compile/test_compile_gate.py's business."""
import itertools

import pytest
import torch

from kernels.sdpa.block_mask import MAP_BLOCK
from kernels.sdpa.triton import configs
from kernels.sdpa.triton.common import INTERPRETING
from kernels.sdpa.triton.configs import (
    ALIGNED_LENGTH, BACKWARD_DK_DV_TILES, BACKWARD_DQ_TILES, BLACKWELL, BLOCK_MAP, DECODE_TILES, DROPOUT, FORWARD_TILES,
    HOPPER, KEY_RANGE, PACKED, SCORE_VARIANTS,
    TRAITS, UNEVEN, head_dim_pruner, spill_traits,
)
from kernels.sdpa.triton.score_variants import VARIANT_FLAGS

TILE_SETS = {"forward": FORWARD_TILES, "backward dK/dV": BACKWARD_DK_DV_TILES, "backward dQ": BACKWARD_DQ_TILES,
             "decode": DECODE_TILES}
DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
PADDED_HEAD_DIMS = (16, 32, 64, 128, 256)


# a launch's GPU is Hopper, Blackwell or neither (sm_80); packed sequences are uneven lengths too
TRAIT_SETS = [set(traits) for count in range(len(TRAITS) + 1) for traits in itertools.combinations(TRAITS, count)
              if not {BLACKWELL, HOPPER} <= set(traits) and (PACKED not in traits or UNEVEN in traits)]


def prune(tiles, dtype: torch.dtype, head_dim: int, traits: set[str] = frozenset()):
    """What the pruner keeps for a launch with these traits (the flags of one score variant, the
    window's left side, stand for all of them)."""
    flags = {flag: int(SCORE_VARIANTS in traits and flag == "WINDOW_LEFT") for flag in VARIANT_FLAGS}
    with configs.compiling_for(100 if BLACKWELL in traits else 90 if HOPPER in traits else 80):
        return head_dim_pruner(tiles)(
            tiles.candidates(), {"q_ptr": torch.empty(0, dtype=dtype)}, BLOCK_D=head_dim, BLOCK_DV=head_dim,
            aligned_lengths=int(UNEVEN not in traits), VARLEN=int(PACKED in traits), USE_DROPOUT=int(DROPOUT in traits),
            SPARSE_BLOCK=128 * (BLOCK_MAP in traits), USE_KEY_RANGE=int(KEY_RANGE in traits), **flags)


def fits(tile, head_dim: int, traits: set[str] = frozenset()) -> bool:
    return (tile.min_head_dim <= head_dim <= tile.max_head_dim and head_dim // tile.column_splits >= 16
            and not any(set(spill_traits(entry)) <= traits for entry in tile.spills_with)
            and (not tile.only_with or any(set(spill_traits(entry)) <= traits for entry in tile.only_with)))


@pytest.mark.parametrize("kernel", TILE_SETS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("head_dim", PADDED_HEAD_DIMS)
@pytest.mark.parametrize("traits", TRAIT_SETS, ids=lambda traits: "+".join(sorted(traits)) or "plain")
def test_every_dtype_has_a_tile_for_every_head_dim(kernel, dtype, head_dim, traits):
    tiles = TILE_SETS[kernel]
    kept = prune(tiles, dtype, head_dim, traits)
    expected = [tile.to_triton() for tile in tiles.for_dtype(dtype) if fits(tile, head_dim, traits)]
    assert kept and kept == expected


@pytest.mark.parametrize("kernel", TILE_SETS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_untimed_takes_the_first_fitting_tile(kernel, dtype, monkeypatch):
    monkeypatch.setattr(configs, "AUTOTUNE", False)
    tiles = TILE_SETS[kernel]
    for head_dim in PADDED_HEAD_DIMS:
        for traits in TRAIT_SETS:
            first = next(tile for tile in tiles.for_dtype(dtype) if fits(tile, head_dim, traits))
            assert prune(tiles, dtype, head_dim, traits) == [first.to_triton()]


def test_a_head_dim_too_narrow_to_split_keeps_the_whole_columns():
    """16-bit dK/dV at D 256 with Dv 16 on sm_90 with the score variants and uneven lengths: the column
    split (2 x 8 columns of dV) is narrower than a dot, and the tile it replaces is taken instead."""
    whole, split = (tile for tile in BACKWARD_DK_DV_TILES.half if tile.min_head_dim == 256)
    assert split.column_splits == 2 and whole.column_splits == 1
    traits = {SCORE_VARIANTS, UNEVEN, HOPPER}
    assert prune(BACKWARD_DK_DV_TILES, torch.float16, 256, traits) == [split.to_triton()]
    with configs.compiling_for(90):
        kept = head_dim_pruner(BACKWARD_DK_DV_TILES)(
            BACKWARD_DK_DV_TILES.candidates(), {"q_ptr": torch.empty(0, dtype=torch.float16)}, BLOCK_D=256,
            BLOCK_DV=16, aligned_lengths=0, VARLEN=0, USE_DROPOUT=0, SPARSE_BLOCK=0, USE_KEY_RANGE=0,
            **{flag: int(flag == "WINDOW_LEFT") for flag in VARIANT_FLAGS})
    assert kept == [whole.to_triton()]


def test_aligned_lengths_divide_every_backward_tile():
    """The launcher calls lengths that are multiples of ALIGNED_LENGTH even (no UNEVEN trait): they
    must then be for every tile, or a tile pruned for uneven lengths could run with bounds checks."""
    for tiles in (BACKWARD_DK_DV_TILES, BACKWARD_DQ_TILES):
        for tile in (*tiles.half, *tiles.single, *tiles.double):
            assert ALIGNED_LENGTH % tile.block_m == 0 and ALIGNED_LENGTH % tile.block_n == 0, tile


def test_tiles_are_pruned_only_by_traits_their_kernel_takes():
    """Only the backward kernels take `aligned_lengths` (in their autotune key), and decode takes no
    packed sequences, dropout or block map: a tile pruned for a trait its kernel has no argument for
    would find none."""
    lacking = {FORWARD_TILES: {UNEVEN}, DECODE_TILES: {UNEVEN, PACKED, DROPOUT, BLOCK_MAP}}
    for tiles, traits in lacking.items():
        listed = {trait for tile in (*tiles.half, *tiles.single, *tiles.double)
                  for entry in (*tile.spills_with, *tile.only_with) for trait in spill_traits(entry)}
        assert not traits & listed


@pytest.mark.parametrize("kernel", TILE_SETS)
def test_the_autotuner_always_prunes(kernel):
    """Triton's autotuner calls the pruner only when it has more than one config."""
    candidates = TILE_SETS[kernel].candidates()
    assert len(candidates) > 1 and len(set(candidates)) == len(candidates)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("head_dim", (24, 64, 80, 128, 200, 256))
def test_decode_rows_stay_within_the_dtype_cap(dtype, head_dim):
    """A big GQA group takes several query blocks rather than one tile taller than its dtype's cap at
    this head dim (configs.DECODE_MAX_ROWS: taller tiles spill or do not fit a block)."""
    from kernels.sdpa.triton.decode import decode_block_m

    cap = next(rows for max_head_dim, rows in configs.DECODE_MAX_ROWS.for_dtype(dtype) if head_dim <= max_head_dim)
    smallest, largest = configs.INTERPRETER_DECODE_BLOCK_M if INTERPRETING else configs.DECODE_BLOCK_M
    for rows in (1, 16, 17, 33, 64, 500):
        block_m = decode_block_m(rows, dtype, head_dim)
        assert smallest <= block_m <= min(cap, largest)
        assert block_m == min(cap, largest) or block_m >= rows, (rows, block_m)
    if dtype == torch.float32 and head_dim > 128:
        assert decode_block_m(64, dtype, head_dim) == 16  # 32 and 64 rows spill 0.6-2.1 KB a thread


@pytest.mark.parametrize("kernel", ["forward", "backward dK/dV", "backward dQ"])
def test_every_tile_divides_the_block_map_tile(kernel):
    """A kernel tile must lie inside one block-map tile (kernels/sdpa/block_mask.py): the tile lists
    walk each listed map block in MAP_BLOCK // BLOCK steps, and a program's map row is its first
    row's. The interpreter's tiles too."""
    tiles = TILE_SETS[kernel]
    interpreter = configs.INTERPRETER_FORWARD_TILE if kernel == "forward" else configs.INTERPRETER_BACKWARD_TILE
    for tile in (*tiles.half, *tiles.single, *tiles.double, interpreter):
        assert MAP_BLOCK % tile.block_m == 0 and MAP_BLOCK % tile.block_n == 0, tile


def test_the_autotuners_argument_names_keep_their_order_with_a_set_lookup():
    """launch_tuning._ArgumentNames: the autotuner zips these names with a call's arguments, so they must
    stay the kernel's own, in order; membership (what the autotuner tests ~60 times a call) is a set's."""
    from kernels.sdpa.triton.backward import _attention_backward_dk_dv_kernel, _attention_backward_dq_kernel
    from kernels.sdpa.triton.decode import _split_attention_kernel
    from kernels.sdpa.triton.forward import _attention_forward_kernel
    for kernel in (_attention_forward_kernel, _attention_backward_dk_dv_kernel, _attention_backward_dq_kernel,
                   _split_attention_kernel):
        names = kernel.arg_names
        assert isinstance(names, list) and names == kernel.fn.arg_names
        assert all(name in names for name in kernel.fn.arg_names) and "not_an_argument" not in names
