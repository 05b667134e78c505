"""The block map's tile lists inside the kernels (kernels/sdpa/block_mask.py builds them on the host).

A kernel whose launch has a block map (SPARSE_BLOCK, the map's tile size, else 0) walks, instead of a
range of tiles, the list of map blocks its row of the map names: FULL blocks first (no mask read, no
causal compare), then PARTIAL ones; each map block is SPARSE_BLOCK // BLOCK of the kernel's tiles, so
a loop step is one tile and the loop stays a plain counted loop whose loads the compiler pipelines.
"""
import triton
import triton.language as tl


@triton.jit
def listed_tiles(lists_ptr, batch, head, block, stride_b, stride_h, stride_block,
                 BLOCK: tl.constexpr, SPARSE_BLOCK: tl.constexpr):
    """(the block indices listed for map block `block` of (batch, head), the loop steps over its FULL
    map blocks, the loop steps in all), a step being one BLOCK-long tile."""
    row = lists_ptr + batch * stride_b + head * stride_h + block * stride_block
    TILES: tl.constexpr = SPARSE_BLOCK // BLOCK
    return row + 2, tl.load(row) * TILES, tl.load(row + 1) * TILES


@triton.jit
def tile_at(step, tile_list, full_steps, BLOCK: tl.constexpr, SPARSE_BLOCK: tl.constexpr):
    """(first index of the tile a loop visits at `step` of `tile_list`, whether the tile reads the mask:
    the `masked_tile` of common.masked_scores, False on the FULL tiles listed first)."""
    TILES: tl.constexpr = SPARSE_BLOCK // BLOCK
    return tl.load(tile_list + step // TILES) * SPARSE_BLOCK + (step % TILES) * BLOCK, step >= full_steps
