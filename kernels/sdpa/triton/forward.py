"""Fused scaled dot-product attention forward, FlashAttention-style.

One program owns BLOCK_M query rows of one (batch, query head). It walks the key/value sequence in
BLOCK_N tiles, keeping a running row max and row sum (online softmax, fp32, base 2 with log2(e)
folded into the scale), so no Nq x Nk tensor ever exists in memory.

Variants are constexpr flags of this one kernel:
- MASK_KIND: none, bool (True = attend) or additive float, read through strides: a broadcast dim
  has stride 0, so a (B, 1, 1, Nk) key-padding mask costs O(B * Nk) bytes, not O(B * H * Nq * Nk).
- IS_CAUSAL: top-left aligned like torch SDPA (query i attends keys 0..i whatever Nq and Nk).
  Key tiles entirely above the diagonal are never visited; tiles entirely below it skip the
  causal compare; only the diagonal tiles pay for it.
- GQA/MQA: query head h reads key/value head h // group_size; K and V are never repeated.
- Head dims that are not powers of two are padded to BLOCK_D inside the kernel with masked loads.
- EVEN_M / EVEN_N (heuristics) drop the bounds checks when the lengths divide the tiles.
- WIDE_OFFSETS / WIDE_BASES: int64 index arithmetic only where some offset can pass 2**31 elements,
  within a (rows, head dim) matrix or across the batch and heads (common.needs_wide_offsets,
  common.needs_wide_bases); int32 otherwise.
- USE_KEY_RANGE: for a bool mask shared by all heads and queries (key padding), the launcher
  finds each batch element's first and last attended key, and the kernel visits only the key
  tiles in between: padded tiles cost nothing.
- USE_DROPOUT: attention weights are dropped in the kernel with Philox bits (dropout_keep), which
  the backward regenerates instead of storing a mask.
- USE_TMA: Q, K, V are read and O written through TMA tensor descriptors instead of pointers, on
  sm_90+ for inputs a descriptor can describe (descriptors.py says when, and how to force either
  path); fewer registers, no per-thread address arithmetic. The autotune key includes it.
- HEAD_DIM_CHUNK: float32 past head dim 128 sums the scores over head-dim chunks of q and k read
  from memory (common.head_dim_chunk), so no whole q or K^T tile is held as a tf32x3 operand (at
  d256 that spilled 1.6 KB a thread).
- WARP_SPECIALIZE: the key loop split into TMA producer and MMA consumer warps (16-bit, sm_100 and
  later); off unless forced, until a card times it (warp_specialization.py).
- FOLD_SCALE: where that is exact (common.scale_folds: a positive scale, nothing added to the
  scores), the softmax scale is applied inside the exp2 instead of to each score first.
- VARLEN: packed variable-length sequences (sequences.py): a program's batch index is a sequence,
  whose rows and lengths it reads from cu_seqlens; the lse is then (Hq, total_q).
- SPARSE_BLOCK: a dense mask's block map (kernels/sdpa/block_mask.py; the map's tile size, else 0):
  the key loop walks the key tiles the map lists for the program's query block (tile_lists.py), the
  ones it keeps whole first, without reading the mask; the tiles it hides whole are never visited.

Caveats: rows with no key to attend (fully masked) produce zeros and lse = -inf, never NaN. The
log-sum-exp is written in natural-log units, fp32 (fp64 for fp64 inputs), shape (B, Hq, Nq). Float32
inputs follow torch's float32 matmul switch (see common.fp32_dot_precision): three TF32 dots per dot
(float32-level error) by default, TF32 where torch allows it, exact FMA math where torch is told to.
"""
import functools
from collections.abc import Callable
from typing import NamedTuple

import torch
import triton
import triton.language as tl

from kernels.sdpa.triton.common import (
    EVEN_LENGTHS, INTERPRETING, LN2, LOG2E, MASK_NONE, MaskArgs, accumulator_dtype, dropout_keep,
    empty_attention_output, fp32_dot_precision, head_dim_chunk, head_dim_chunked_dot, index_range, key_span,
    load_tile, log2_units, masked_scores_from_rows, needs_wide_bases, needs_wide_offsets, padded_head_dim,
    precision_flags, query_block_coordinates, scale_folds, seq_bucket, tile_ptrs,
)
from kernels.sdpa.triton.configs import (
    FORWARD_TILES, INTERPRETER_FORWARD_TILE, autotune_configs, head_dim_pruner,
)
from kernels.sdpa.triton.score_variants import (
    VARIANT_FLAGS, KernelVariants, clip_to_window, lse_without_keys, per_row_values, start_row_stats,
    tile_straddles_window, windowed_scores,
)
from kernels.sdpa.triton.tile_lists import listed_tiles, tile_at
from kernels.sdpa.triton.descriptors import (
    bases_aligned, row_tile_descriptor, scratch_allocator, tensor_descriptor_switch, uses_tensor_descriptors,
)
from kernels.sdpa.triton.warp_specialization import uses_warp_specialization, warp_specialization_switch
from kernels.sdpa.triton.sequences import PackedSequences, sequence_pointer_args, sequence_rows
from kernels.sdpa.variants import AttentionVariants
from kernels.shared.triton.launch_tuning import autotune, heuristics
from kernels.shared.dropout import Dropout
from kernels.shared.host_math import ceil_div
from kernels.shared.launch_plans import LaunchPlans


@triton.jit
def attend_key_tiles(
    acc, m_i, l_i, q,
    k_tiles, v_tiles, mask_row_ptrs,
    stride_kn, stride_kd, stride_vn, stride_vd, stride_mask_n,
    offs_m, offs_d, offs_dv, n_queries, n_keys, qk_scale, key_start, key_end,
    dropout_p, dropout_scale, dropout_seed, batch_head,
    HEAD_DIM: tl.constexpr, HEAD_DIM_V: tl.constexpr, PAD_D: tl.constexpr, PAD_DV: tl.constexpr,
    BLOCK_N: tl.constexpr, MASK_KIND: tl.constexpr, MASK_SHARED_ROW: tl.constexpr,
    APPLY_CAUSAL: tl.constexpr, USE_DROPOUT: tl.constexpr,
    EVEN_M: tl.constexpr, EVEN_N: tl.constexpr, DOT_IN_FP32: tl.constexpr,
    INPUT_PRECISION: tl.constexpr, WIDE_OFFSETS: tl.constexpr,
    query_pos, row_slopes, softcap_log2, window_left, window_right, first_row, last_row,
    SOFTCAP: tl.constexpr, ALIBI: tl.constexpr, WINDOW_LEFT: tl.constexpr, WINDOW_RIGHT: tl.constexpr,
    diagonal_start=0, USE_TMA: tl.constexpr = False,
    stride_qd=0, q_first_row=0, HEAD_DIM_CHUNK: tl.constexpr = 0, FOLD_SCALE: tl.constexpr = False,
    tile_list=None, full_steps=0, SPARSE_BLOCK: tl.constexpr = 0, WARP_SPECIALIZE: tl.constexpr = False,
):
    """Fold the key tiles [key_start, key_end) into the running (acc, m_i, l_i) of one query block.
    With SPARSE_BLOCK (a block map, tile_lists.py) the loop runs over steps [key_start, key_end) of
    `tile_list` instead, its first `full_steps` tiles reading no mask. WARP_SPECIALIZE: the loop is
    warp-specialised (warp_specialization.py; off unless forced).

    The block's rows are `offs_m` (rows >= n_queries are padding); `mask_row_ptrs` points at each
    row's mask row (see masked_scores_from_rows). `k_tiles` and `v_tiles` are the base pointers of the
    (keys, head dim) matrices, or with USE_TMA their descriptors (descriptors.row_tile_descriptor).
    With APPLY_CAUSAL the tiles from `diagonal_start` on get the causal compare, the ones before it
    do not: one loop, whose compare is a branch on a value uniform over the block, so the loop body
    is compiled once (two loops, one per kind of tile, held 128x128 d64 at 255 registers on sm_90;
    one loop: 168, as without causal).

    With HEAD_DIM_CHUNK (common.head_dim_chunk) the scores are read a head-dim chunk at a time
    (head_dim_chunked_dot): `q` is then not the query tile but each row's pointer (columns `stride_qd`
    apart), or with USE_TMA the queries' descriptor, read from row `q_first_row`; `k_tiles` is then read
    in HEAD_DIM_CHUNK-column blocks.

    The score variants (score_variants.py): `query_pos` are the rows' query positions (rows of
    queries [first_row, last_row]), `row_slopes` their ALiBi slopes in log2 units; the window
    compare runs on the tiles that straddle the band's edges only.

    FOLD_SCALE (common.scale_folds decides it): the tiles' scores stay unscaled through the masks
    (which only set -inf) and `qk_scale` is applied in the softmax: the row max of the raw scores
    times the scale, then exp2(s * qk_scale - m), one FFMA a score where the general path spends an
    FMUL on each score first (30 FMULs a thread per 128x64 key tile, d64 on sm_90). m_i, l_i and the
    lse stay in the same units either way. Only where nothing is added to the scaled scores (soft
    cap, ALiBi, additive mask) and the scale is positive: max(s * c) = max(s) * c needs c > 0, and
    a masked -inf times 0 would be NaN."""
    for step in tl.range(key_start, key_end, 1 if SPARSE_BLOCK else BLOCK_N, warp_specialize=WARP_SPECIALIZE):
        if SPARSE_BLOCK:
            start_n, masked_tile = tile_at(step, tile_list, full_steps, BLOCK=BLOCK_N, SPARSE_BLOCK=SPARSE_BLOCK)
        else:  # every tile reads the mask, as before block maps
            start_n, masked_tile = step, None
        offs_n = index_range(start_n, BLOCK=BLOCK_N, WIDE=WIDE_OFFSETS)
        if HEAD_DIM_CHUNK:  # q @ k^T itself, summed over head-dim chunks: no whole K^T tile
            q_or_product = head_dim_chunked_dot(
                q, k_tiles if USE_TMA else k_tiles + offs_n * stride_kn, offs_m, offs_n, q_first_row, start_n,
                stride_qd, stride_kd, n_queries, n_keys, HEAD_DIM=HEAD_DIM, HEAD_DIM_CHUNK=HEAD_DIM_CHUNK,
                CHECK_A_ROWS=not EVEN_M, CHECK_B_ROWS=not EVEN_N, USE_TMA=USE_TMA, OUT_DTYPE=acc.dtype,
                DOT_IN_FP32=DOT_IN_FP32, INPUT_PRECISION=INPUT_PRECISION, WIDE_OFFSETS=WIDE_OFFSETS)
            k = None
        else:
            q_or_product = q
            # K^T tile (BLOCK_D, BLOCK_N), read straight through the strides (or the descriptor's rows,
            # transposed in shared memory): no transpose copy.
            if USE_TMA:
                k = tl.trans(k_tiles.load([start_n, 0]))
            else:
                k = load_tile(tile_ptrs(k_tiles, offs_d, offs_n, stride_kd, stride_kn),
                              offs_d, offs_n, HEAD_DIM, n_keys, CHECK_ROWS=PAD_D, CHECK_COLS=not EVEN_N)
            if DOT_IN_FP32:
                k = k.to(tl.float32)
        qk, _ = masked_scores_from_rows(q_or_product, k, qk_scale, offs_m, offs_n, mask_row_ptrs, stride_mask_n,
                                        n_queries, n_keys, MASK_KIND=MASK_KIND, MASK_SHARED_ROW=MASK_SHARED_ROW,
                                        APPLY_CAUSAL=False, EVEN_M=EVEN_M, EVEN_N=EVEN_N,
                                        INPUT_PRECISION=INPUT_PRECISION, query_pos=query_pos, row_slopes=row_slopes,
                                        softcap_log2=softcap_log2, SOFTCAP=SOFTCAP, ALIBI=ALIBI,
                                        FOLD_SCALE=FOLD_SCALE, masked_tile=masked_tile)
        if APPLY_CAUSAL:
            if start_n >= diagonal_start:
                qk = tl.where(offs_m[:, None] >= offs_n[None, :], qk, float("-inf"))
        if WINDOW_LEFT or WINDOW_RIGHT:
            if tile_straddles_window(first_row, last_row, start_n, start_n + BLOCK_N - 1, window_left, window_right,
                                     WINDOW_LEFT=WINDOW_LEFT, WINDOW_RIGHT=WINDOW_RIGHT):
                qk = windowed_scores(qk, query_pos, offs_n, window_left, window_right,
                                     WINDOW_LEFT=WINDOW_LEFT, WINDOW_RIGHT=WINDOW_RIGHT)

        # Online softmax, in log2 units (with FOLD_SCALE the scale joins here: see above). A row that
        # has seen only masked keys keeps m = -inf; using 0 in its place makes every exp2 exactly 0
        # instead of exp2(-inf - -inf) = NaN. Only a mask or a window can hide all of a row's keys in
        # the first tile it visits: without them that tile holds key 0 (causal rows all attend it),
        # or a split's first key (decode), and keys past n_keys never fill a tile.
        m_new = tl.maximum(m_i, log2_units(tl.max(qk, 1), qk_scale, FOLD_SCALE=FOLD_SCALE))
        if MASK_KIND != MASK_NONE or WINDOW_LEFT or WINDOW_RIGHT:
            m_shift = tl.where(m_new == float("-inf"), 0.0, m_new)
        else:
            m_shift = m_new
        p = tl.math.exp2(log2_units(qk, qk_scale, FOLD_SCALE=FOLD_SCALE) - m_shift[:, None])
        alpha = tl.math.exp2(m_i - m_shift)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        if USE_DROPOUT:  # after the row sum: dropout acts on the normalised weights
            keep = dropout_keep(dropout_seed, batch_head, offs_m, offs_n, dropout_p)
            p = tl.where(keep, p * dropout_scale, 0.0)

        if USE_TMA:
            v = v_tiles.load([start_n, 0])
        else:
            v = load_tile(tile_ptrs(v_tiles, offs_n, offs_dv, stride_vn, stride_vd),
                          offs_n, offs_dv, n_keys, HEAD_DIM_V, CHECK_ROWS=not EVEN_N, CHECK_COLS=PAD_DV)
        if DOT_IN_FP32:
            v = v.to(tl.float32)
        acc = tl.dot(p.to(v.dtype), v, acc, input_precision=INPUT_PRECISION, out_dtype=acc.dtype)
        m_i = m_new
    return acc, m_i, l_i


@triton.jit
def finish_rows(acc, m_i, l_i, EMPTY_ROWS: tl.constexpr):
    """The normalised output rows and their log-sum-exp (natural log) from a running (acc, m_i, l_i).
    EMPTY_ROWS: a row may have attended no key (l_i = 0), which then gives zeros and -inf, never NaN;
    without it every row has attended one key at least, whose weight alone makes l_i >= 1."""
    if EMPTY_ROWS:
        has_keys = l_i > 0.0
        out = acc / tl.where(has_keys, l_i, 1.0)[:, None]
        lse = tl.where(has_keys, (m_i + tl.math.log2(tl.where(has_keys, l_i, 1.0))) * LN2, float("-inf"))
    else:
        out = acc / l_i[:, None]
        lse = (m_i + tl.math.log2(l_i)) * LN2
    return out, lse


@autotune(
    configs=autotune_configs(FORWARD_TILES, INTERPRETER_FORWARD_TILE, INTERPRETING),
    key=["seq_bucket_q", "seq_bucket_k", "BLOCK_D", "BLOCK_DV", "MASK_KIND", "MASK_SHARED_ROW", "USE_KEY_RANGE",
         "IS_CAUSAL", "USE_DROPOUT", "USE_TMA", "VARLEN", "FOLD_SCALE", "SPARSE_BLOCK", "WARP_SPECIALIZE",
         *VARIANT_FLAGS],
    prune_configs_by={"early_config_prune": head_dim_pruner(FORWARD_TILES)},
)
@heuristics(EVEN_LENGTHS)
@triton.jit(do_not_specialize=["dropout_seed"])
def _attention_forward_kernel(
    q_ptr, k_ptr, v_ptr, out_ptr, lse_ptr, mask_ptr, key_range_ptr, cu_seqlens_q_ptr, cu_seqlens_k_ptr,
    slopes_ptr, stride_slopes_b, sinks_ptr, softcap_log2, window_left, window_right,
    tile_lists_ptr, stride_lists_b, stride_lists_h, stride_lists_block,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_ob, stride_oh, stride_om, stride_od,
    stride_mask_b, stride_mask_h, stride_mask_m, stride_mask_n, stride_lse_b, stride_lse_h,
    n_heads, group_size, n_queries, n_keys, qk_scale, dropout_p, dropout_scale, dropout_seed,
    seq_bucket_q, seq_bucket_k,  # only steer the autotuner's cache key
    HEAD_DIM: tl.constexpr, HEAD_DIM_V: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
    MASK_KIND: tl.constexpr, MASK_SHARED_ROW: tl.constexpr,
    USE_KEY_RANGE: tl.constexpr, IS_CAUSAL: tl.constexpr, USE_DROPOUT: tl.constexpr,
    STORE_LSE: tl.constexpr, WIDE_OFFSETS: tl.constexpr, WIDE_BASES: tl.constexpr, USE_TMA: tl.constexpr,
    VARLEN: tl.constexpr,
    ACC_DTYPE: tl.constexpr, DOT_IN_FP32: tl.constexpr, INPUT_PRECISION: tl.constexpr, HEAD_DIM_CHUNK: tl.constexpr,
    SOFTCAP: tl.constexpr, ALIBI: tl.constexpr, USE_SINKS: tl.constexpr,
    WINDOW_LEFT: tl.constexpr, WINDOW_RIGHT: tl.constexpr, FOLD_SCALE: tl.constexpr, SPARSE_BLOCK: tl.constexpr,
    WARP_SPECIALIZE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, EVEN_M: tl.constexpr, EVEN_N: tl.constexpr,
):
    start_m, batch_head, batch, head, kv_head = query_block_coordinates(n_heads, group_size, IS_CAUSAL=IS_CAUSAL,
                                                                        HEAD_AXIS=True, WIDE_BASES=WIDE_BASES)
    # VARLEN: batch is a packed sequence; its rows start at query_row0 / key_row0 (sequences.py).
    query_row0, n_queries = sequence_rows(cu_seqlens_q_ptr, batch, n_queries, VARLEN=VARLEN)
    key_row0, n_keys = sequence_rows(cu_seqlens_k_ptr, batch, n_keys, VARLEN=VARLEN)
    if VARLEN:
        if start_m * BLOCK_M >= n_queries:  # the grid is sized for the longest sequence
            return
    offs_m = index_range(start_m * BLOCK_M, BLOCK=BLOCK_M, WIDE=WIDE_OFFSETS)
    offs_d = index_range(0, BLOCK=BLOCK_D, WIDE=WIDE_OFFSETS)
    offs_dv = index_range(0, BLOCK=BLOCK_DV, WIDE=WIDE_OFFSETS)

    # Each matrix's offset summed before it meets the pointer: one 64-bit addition, not one a term.
    q_base = q_ptr + (batch * stride_qb + head * stride_qh + query_row0 * stride_qm)
    k_base = k_ptr + (batch * stride_kb + kv_head * stride_kh + key_row0 * stride_kn)
    v_base = v_ptr + (batch * stride_vb + kv_head * stride_vh + key_row0 * stride_vn)
    out_base = out_ptr + (batch * stride_ob + head * stride_oh + query_row0 * stride_om)
    mask_base = mask_ptr + (batch * stride_mask_b + head * stride_mask_h)
    mask_row_ptrs = mask_base if MASK_SHARED_ROW else mask_base + offs_m * stride_mask_m

    # With HEAD_DIM_CHUNK, attend_key_tiles reads q and k a head-dim chunk at a time: q stays in memory.
    if USE_TMA:
        q = row_tile_descriptor(q_base, n_queries, stride_qm, N_COLS=HEAD_DIM, BLOCK_ROWS=BLOCK_M,
                                BLOCK_COLS=HEAD_DIM_CHUNK if HEAD_DIM_CHUNK else BLOCK_D)
        if not HEAD_DIM_CHUNK:
            q = q.load([start_m * BLOCK_M, 0])
        k_tiles = row_tile_descriptor(k_base, n_keys, stride_kn, N_COLS=HEAD_DIM, BLOCK_ROWS=BLOCK_N,
                                      BLOCK_COLS=HEAD_DIM_CHUNK if HEAD_DIM_CHUNK else BLOCK_D)
        v_tiles = row_tile_descriptor(v_base, n_keys, stride_vn, N_COLS=HEAD_DIM_V, BLOCK_ROWS=BLOCK_N,
                                      BLOCK_COLS=BLOCK_DV)
        # O's descriptor before the key loop for 16-bit inputs: made after it, the shared-memory address
        # every descriptor is built at stays live across the loop, and at 128 registers ptxas spilled it
        # (fp16 d128 128x64 on sm_100, no mask and packed sequences: 4 bytes). Float32 makes it after the
        # loop: its kernels sit at the register limit, where the live descriptor spilled instead (d64
        # dropout 32x32 on sm_100: 255 registers, 8 bytes).
        if q_ptr.dtype.element_ty.primitive_bitwidth <= 16:
            out_tiles = row_tile_descriptor(out_base, n_queries, stride_om, N_COLS=HEAD_DIM_V, BLOCK_ROWS=BLOCK_M,
                                            BLOCK_COLS=BLOCK_DV)
    elif HEAD_DIM_CHUNK:
        q, k_tiles, v_tiles = q_base + offs_m * stride_qm, k_base, v_base
    else:
        q = load_tile(tile_ptrs(q_base, offs_m, offs_d, stride_qm, stride_qd),
                      offs_m, offs_d, n_queries, HEAD_DIM, CHECK_ROWS=not EVEN_M, CHECK_COLS=HEAD_DIM != BLOCK_D)
        k_tiles, v_tiles = k_base, v_base
    if DOT_IN_FP32 and not HEAD_DIM_CHUNK:
        q = q.to(tl.float32)

    m_i, l_i = start_row_stats(sinks_ptr, head, True, BLOCK_M=BLOCK_M, ACC_DTYPE=ACC_DTYPE, USE_SINKS=USE_SINKS)
    acc = tl.zeros([BLOCK_M, BLOCK_DV], dtype=ACC_DTYPE)

    key_start, diagonal_start, diagonal_end = key_span(
        start_m, batch, key_range_ptr, n_keys,
        BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, USE_KEY_RANGE=USE_KEY_RANGE, IS_CAUSAL=IS_CAUSAL)
    first_row = start_m * BLOCK_M
    last_row = first_row + BLOCK_M - 1
    key_start, diagonal_start, diagonal_end = clip_to_window(
        key_start, diagonal_start, diagonal_end, first_row, last_row, window_left, window_right, n_keys,
        BLOCK=BLOCK_N, HAS_BEFORE=WINDOW_LEFT, HAS_AFTER=WINDOW_RIGHT)
    row_slopes = 0.0
    if ALIBI:
        row_slopes = tl.zeros([BLOCK_M], dtype=tl.float32) + per_row_values(
            slopes_ptr, batch * stride_slopes_b + head, True, LOG2E)
    tile_list, full_steps = tile_lists_ptr, 0
    if SPARSE_BLOCK:  # the key tiles the block map lists for this query block (causal and window folded in)
        tile_list, full_steps, diagonal_end = listed_tiles(
            tile_lists_ptr, batch, head, first_row // SPARSE_BLOCK, stride_lists_b, stride_lists_h,
            stride_lists_block, BLOCK=BLOCK_N, SPARSE_BLOCK=SPARSE_BLOCK)
        key_start = 0

    # Tiles before the diagonal need no causal compare, the diagonal tiles [diagonal_start,
    # diagonal_end) do (non-causal: diagonal_end is the key span's end); with a block map those are
    # the listed tiles' steps, the compare still decided by each tile's position.
    acc, m_i, l_i = attend_key_tiles(
        acc, m_i, l_i, q, k_tiles, v_tiles, mask_row_ptrs,
        stride_kn, stride_kd, stride_vn, stride_vd, stride_mask_n,
        offs_m, offs_d, offs_dv, n_queries, n_keys, qk_scale, key_start, diagonal_end,
        dropout_p, dropout_scale, dropout_seed, batch_head,
        HEAD_DIM=HEAD_DIM, HEAD_DIM_V=HEAD_DIM_V, PAD_D=BLOCK_D != HEAD_DIM, PAD_DV=BLOCK_DV != HEAD_DIM_V,
        BLOCK_N=BLOCK_N, MASK_KIND=MASK_KIND, MASK_SHARED_ROW=MASK_SHARED_ROW,
        APPLY_CAUSAL=IS_CAUSAL, USE_DROPOUT=USE_DROPOUT,
        EVEN_M=EVEN_M, EVEN_N=EVEN_N, DOT_IN_FP32=DOT_IN_FP32, INPUT_PRECISION=INPUT_PRECISION,
        WIDE_OFFSETS=WIDE_OFFSETS, query_pos=offs_m, row_slopes=row_slopes, softcap_log2=softcap_log2,
        window_left=window_left, window_right=window_right, first_row=first_row, last_row=last_row,
        SOFTCAP=SOFTCAP, ALIBI=ALIBI, WINDOW_LEFT=WINDOW_LEFT, WINDOW_RIGHT=WINDOW_RIGHT,
        diagonal_start=diagonal_start, USE_TMA=USE_TMA,
        stride_qd=stride_qd, q_first_row=start_m * BLOCK_M, HEAD_DIM_CHUNK=HEAD_DIM_CHUNK, FOLD_SCALE=FOLD_SCALE,
        tile_list=tile_list, full_steps=full_steps, SPARSE_BLOCK=SPARSE_BLOCK, WARP_SPECIALIZE=WARP_SPECIALIZE)

    # Only a mask, a window or a packed sequence without keys can leave a row nothing to attend: causal
    # rows attend key 0 at least (top-left aligned), and n_keys > 0 (launch_forward). Uneven lengths keep
    # the guard too: without it ptxas parks one value in local memory (16-bit d128 64x32/4/2 on sm_80).
    uneven = not (EVEN_M and EVEN_N)
    out, lse = finish_rows(acc, m_i, l_i,
                           EMPTY_ROWS=MASK_KIND != MASK_NONE or WINDOW_LEFT or WINDOW_RIGHT or VARLEN or uneven)
    if USE_TMA:  # the descriptor drops the rows past n_queries and the padded head-dim columns
        if q_ptr.dtype.element_ty.primitive_bitwidth > 16:
            out_tiles = row_tile_descriptor(out_base, n_queries, stride_om, N_COLS=HEAD_DIM_V, BLOCK_ROWS=BLOCK_M,
                                            BLOCK_COLS=BLOCK_DV)
        out_tiles.store([start_m * BLOCK_M, 0], out.to(out_ptr.dtype.element_ty))
    else:
        out_ptrs = tile_ptrs(out_base, offs_m, offs_dv, stride_om, stride_od)
        out = out.to(out_ptr.dtype.element_ty)
        if EVEN_M and HEAD_DIM_V == BLOCK_DV:
            tl.store(out_ptrs, out)
        else:
            tl.store(out_ptrs, out, mask=(offs_m[:, None] < n_queries) & (offs_dv[None, :] < HEAD_DIM_V))

    if STORE_LSE:
        lse_ptrs = lse_ptr + (batch * stride_lse_b + head * stride_lse_h + query_row0) + offs_m
        if EVEN_M:
            tl.store(lse_ptrs, lse)
        else:
            tl.store(lse_ptrs, lse, mask=offs_m < n_queries)


def launch_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    is_causal: bool,
    scale: float,
    out: torch.Tensor | None = None,
    lse: torch.Tensor | None = None,
    dropout: Dropout = Dropout(),
    sequences: PackedSequences | None = None,
    variants: AttentionVariants | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Launch the kernel on validated inputs; returns (out, lse).

    q (B, Hq, Nq, D), k (B, Hkv, Nk, D), v (B, Hkv, Nk, Dv) with any strides; `mask` is None or
    already broadcast to (B, Hq, Nq, Nk) as a stride-0 view. `out` (B, Hq, Nq, Dv) defaults to
    memory laid out as (B, Nq, Hq, Dv), so merging heads afterwards is a free view. `lse`, when
    given, is a contiguous (B, Hq, Nq) tensor of `accumulator_dtype(q.dtype)` that receives the
    log-sum-exp. `dropout` (probability and Philox seed) drops attention weights in the kernel.
    `sequences`: the inputs are packed sequences in the kernel's VARLEN mode (see sequences.py: q, k,
    v and out are `batched_view`s, lse a (B, Hq, total_q) view of (Hq, total_q), no mask).
    `variants`: the checked window / softcap / ALiBi / sinks options (kernels/sdpa/variants.py).
    """
    if out is None:
        out = empty_attention_output(q, v)
    if out.numel() == 0:
        return out, lse
    if (k.shape[2] if sequences is None else sequences.max_seqlen_k) == 0:  # every row is fully masked
        out.zero_()
        if lse is not None:
            lse.copy_(lse_without_keys(lse, variants))
        return out, lse

    mask_args = MaskArgs(mask, placeholder=q)
    kernel_variants = KernelVariants(variants, placeholder=q, accumulator=accumulator_dtype(q.dtype))
    qk_scale = scale * LOG2E.value
    tile_lists = mask_args.tile_list_args(is_causal, variants, by_keys=False)
    grid, use_tma, sizes, buckets, constexprs = _forward_plan(
        q, k, v, out, lse, mask, mask_args, tile_lists[0], is_causal, dropout.active, sequences, variants,
        kernel_variants.flags, scale_folds(qk_scale, mask_args.kind, kernel_variants.flags))
    launch = _attention_forward_kernel[grid]
    if use_tma and not INTERPRETING:  # the kernel writes its descriptors into scratch memory
        launch = functools.partial(scratch_allocator(q.device).run, launch)
    launch(
        q, k, v, out, q if lse is None else lse, mask_args.tensor, mask_args.key_range_arg,
        *sequence_pointer_args(sequences, placeholder=q), *kernel_variants.args,
        *tile_lists, *sizes, qk_scale, dropout.p, dropout.keep_scale, dropout.seed, *buckets, **constexprs,
    )
    return out, lse


class _ForwardPlan(NamedTuple):
    """What a forward launch derives from its layout and flags (see _forward_plan)."""

    grid: Callable[[dict], tuple[int, int, int]]
    use_tma: bool
    sizes: tuple  # the strides of q, k, v, out, mask and lse, then n_heads, group_size, n_queries, n_keys
    buckets: tuple  # seq_bucket_q, seq_bucket_k
    constexprs: dict


_forward_plans = LaunchPlans()


def _forward_plan(q, k, v, out, lse, mask, mask_args, tile_list, is_causal, use_dropout, sequences, variants,
                  variant_flags, fold_scale) -> _ForwardPlan:
    """The launch's plan, remembered (kernels/shared/launch_plans.py) under everything it is computed
    from: the shapes and strides of q, k, v, out, lse, the mask and the block map's tile list, the
    mask's dtype and map tile, dtype, device, the flags, the variants' flags, whether the scale folds,
    the packed sequences' longest lengths, and the switches the descriptor path, warp specialisation and
    float32 dots follow (with whether every base address is 16-byte aligned, which the descriptor path
    also needs)."""
    key = (q.shape, q.stride(), k.shape, k.stride(), v.shape, v.stride(), out.shape, out.stride(),
           None if lse is None else (lse.shape, lse.stride()),
           None if mask is None else (mask.shape, mask.stride(), mask.dtype), mask_args.sparse_block,
           (tile_list.shape, tile_list.stride()) if mask_args.sparse_block else None,  # else the mask or q
           q.dtype, q.device, is_causal, use_dropout, fold_scale,
           None if sequences is None else (sequences.max_seqlen_q, sequences.max_seqlen_k),
           None if variants is None else tuple(variant_flags.values()),
           tensor_descriptor_switch(), bases_aligned(q, k, v, out), warp_specialization_switch(),
           fp32_dot_precision() if q.dtype is torch.float32 else None)
    plan = _forward_plans.get(key)
    if plan is None:
        plan = _forward_plans.add(key, _new_forward_plan(q, k, v, out, lse, mask, mask_args, tile_list, is_causal,
                                                         use_dropout, sequences, variant_flags, fold_scale))
    return plan


def _new_forward_plan(q, k, v, out, lse, mask, mask_args, tile_list, is_causal, use_dropout, sequences,
                      variant_flags, fold_scale) -> _ForwardPlan:
    batch, n_heads, n_queries, head_dim = q.shape
    n_kv_heads, n_keys, head_dim_v = k.shape[1], k.shape[2], v.shape[3]
    if sequences is not None:  # the grid and the autotuner's key follow the longest sequence
        n_queries, n_keys = sequences.max_seqlen_q, sequences.max_seqlen_k

    def grid(meta):
        return (ceil_div(n_queries, meta["BLOCK_M"]), n_heads, batch)  # query_block_coordinates

    use_tma = uses_tensor_descriptors(q, k, v, out)
    block_d, block_dv = padded_head_dim(head_dim), padded_head_dim(head_dim_v)
    sizes = (*q.stride(), *k.stride(), *v.stride(), *out.stride(), *mask_args.strides,
             *((0, 0) if lse is None else lse.stride()[:2]), n_heads, n_heads // n_kv_heads, n_queries, n_keys)
    constexprs = dict(
        HEAD_DIM=head_dim, HEAD_DIM_V=head_dim_v, BLOCK_D=block_d, BLOCK_DV=block_dv,
        MASK_KIND=mask_args.kind, MASK_SHARED_ROW=mask_args.shared_row(rows_span_heads=False),
        USE_KEY_RANGE=mask_args.key_range is not None, IS_CAUSAL=is_causal,
        USE_DROPOUT=use_dropout, STORE_LSE=lse is not None,
        WIDE_OFFSETS=needs_wide_offsets(q, k, v, out, mask),
        WIDE_BASES=needs_wide_bases(q, k, v, out, lse, mask, tile_list),
        USE_TMA=use_tma, VARLEN=sequences is not None,
        **precision_flags(q.dtype), **variant_flags,
        HEAD_DIM_CHUNK=head_dim_chunk(q.dtype, block_d, block_dv),
        FOLD_SCALE=fold_scale, SPARSE_BLOCK=mask_args.sparse_block,
        WARP_SPECIALIZE=uses_warp_specialization(use_tma, q),
    )
    return _ForwardPlan(grid, use_tma, sizes, (seq_bucket(n_queries), seq_bucket(n_keys)), constexprs)
