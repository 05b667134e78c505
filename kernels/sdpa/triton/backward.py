"""Fused scaled dot-product attention backward (dQ, dK, dV), FlashAttention-2 style.

The probabilities are recomputed tile by tile from the forward's log-sum-exp, so no Nq x Nk tensor
is ever stored. Three launches, none with atomics, so results are deterministic run to run:
1. delta = rowsum(dO * O) per query row (the softmax-gradient correction term).
2. dK, dV: one program per (batch, key/value head, BLOCK_N keys). It streams the query blocks of
   every query head in its GQA group, so dK and dV come out already reduced over the group and K/V
   are never repeated.
3. dQ: one program per (batch, query head, BLOCK_M queries), streaming key blocks. With a float mask
   that requires grad (MASK_GRAD) it also stores each tile's dS, the mask's gradient, into a dense
   (B, Hq, Nq, Nk) tensor (zeros on the key tiles it skips). The dQ kernel rather than dK/dV: its
   tiles are (queries, keys), rows along the tensor's rows, whereas dK/dV computes 16-bit tiles keys
   first (KEYS_FIRST), so its store would go through a transposing layout conversion. Stored there, dS
   spills nothing at the shipped d64/d128 tiles, and without the flag the kernel compiles as before
   (`python -m benchmarks compile --variants additive_mask additive_mask_grad`).
Both gradient kernels take the forward's flags (mask kind, causal with tile skipping, key-padding
span, a dense mask's block map (SPARSE_BLOCK: the dK/dV kernel walks the query tiles listed for its
key block, the dQ kernel the key tiles listed for its query block, tile_lists.py), dropout regenerated
from the same Philox seed, EVEN_M/EVEN_N, padded head dims, VARLEN packed
sequences with lse and delta (Hq, total_q): see sequences.py; and the score variants of
score_variants.py: soft cap, ALiBi, window with tile skipping, sinks, whose own gradient torch
reduces from lse and delta). A fully
masked query row has lse = -inf: it is treated as +inf so its probabilities are exactly 0 and its
gradients are 0, never NaN. Float32 past head dim 128 (HEAD_DIM_CHUNK, common.head_dim_chunk) sums
q @ K^T and dO @ V^T over head-dim chunks of their operands read from memory, and reads q, dO or k
whole only for the gradient dots, so no kernel holds two whole tf32x3 tiles across its loop.
Where common.scale_folds allows it (FOLD_SCALE), P = exp2(s * qk_scale - lse) is recomputed from the
raw masked scores in one FFMA a score: without a mask LLVM fuses the scale's multiply into the
subtraction anyway, but the masks' selects sit between the two and kept them apart.
"""
import torch
import triton
import triton.language as tl

from kernels.sdpa.triton.common import (
    EVEN_LENGTHS, INTERPRETING, LOG2E, MaskArgs, accumulator_dtype, dropout_keep, head_dim_chunk,
    head_dim_chunked_dot, index_range, key_span, load_tile, log2_units, masked_scores, needs_wide_offsets,
    padded_head_dim, precision_flags, query_block_coordinates, scale_folds, seq_bucket, tile_ptrs,
)
from kernels.sdpa.triton.configs import (
    ALIGNED_LENGTH, BACKWARD_DK_DV_TILES, BACKWARD_DQ_TILES, INTERPRETER_BACKWARD_TILE, TileSet, autotune_configs,
    head_dim_pruner,
)
from kernels.sdpa.triton.score_variants import (
    VARIANT_FLAGS, KernelVariants, clip_to_window, per_row_values, sink_gradient, soft_cap_slope,
    tile_straddles_window, windowed_scores,
)
from kernels.sdpa.triton.tile_lists import listed_tiles, tile_at
from kernels.sdpa.triton.sequences import PackedSequences, sequence_pointer_args, sequence_rows
from kernels.sdpa.variants import AttentionVariants
from kernels.shared.triton.launch_tuning import autotune, heuristics
from kernels.shared.dropout import Dropout


def _autotune(tiles: TileSet, *flags: str) -> dict:
    return dict(
        configs=autotune_configs(tiles, INTERPRETER_BACKWARD_TILE, INTERPRETING),
        # aligned_lengths: lengths that divide every tile, else the pruner drops the tiles that spill
        # with bounds checks (configs.UNEVEN)
        key=["seq_bucket_q", "seq_bucket_k", "aligned_lengths", "BLOCK_D", "BLOCK_DV", "MASK_KIND", "MASK_SHARED_ROW",
             "USE_KEY_RANGE", "IS_CAUSAL", "USE_DROPOUT", "VARLEN", "FOLD_SCALE", "SPARSE_BLOCK", *VARIANT_FLAGS,
             *flags],
        prune_configs_by={"early_config_prune": head_dim_pruner(tiles)},
    )


@triton.jit
def _row_sum_of_products_kernel(
    out_ptr, dout_ptr, delta_ptr,
    stride_ob, stride_oh, stride_om, stride_od, stride_db, stride_dh, stride_dm, stride_dd,
    n_heads, n_queries, HEAD_DIM_V: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_DV: tl.constexpr,
    WIDE_OFFSETS: tl.constexpr,
):
    """delta[b, h, m] = sum_d dO[b, h, m, d] * O[b, h, m, d], in delta's (accumulator) dtype."""
    batch_head = tl.program_id(1)
    batch = (batch_head // n_heads).to(tl.int64)
    head = (batch_head % n_heads).to(tl.int64)
    offs_m = index_range(tl.program_id(0) * BLOCK_M, BLOCK=BLOCK_M, WIDE=WIDE_OFFSETS)
    offs_d = index_range(0, BLOCK=BLOCK_DV, WIDE=WIDE_OFFSETS)
    o = load_tile(tile_ptrs(out_ptr + batch * stride_ob + head * stride_oh, offs_m, offs_d, stride_om, stride_od),
                  offs_m, offs_d, n_queries, HEAD_DIM_V, CHECK_ROWS=True, CHECK_COLS=True)
    do = load_tile(tile_ptrs(dout_ptr + batch * stride_db + head * stride_dh, offs_m, offs_d, stride_dm, stride_dd),
                   offs_m, offs_d, n_queries, HEAD_DIM_V, CHECK_ROWS=True, CHECK_COLS=True)
    delta = tl.sum(o.to(delta_ptr.dtype.element_ty) * do.to(delta_ptr.dtype.element_ty), axis=1)
    tl.store(delta_ptr + batch_head.to(tl.int64) * n_queries + offs_m, delta, mask=offs_m < n_queries)


@triton.jit
def _log2_lse(lse_ptrs, offs_m, n_queries, EVEN_M: tl.constexpr):
    """The forward's natural-log lse in log2 units; fully masked rows (-inf) become +inf so that
    exp2(score - lse) is exactly 0 for them."""
    if EVEN_M:
        lse = tl.load(lse_ptrs)
    else:
        lse = tl.load(lse_ptrs, mask=offs_m < n_queries, other=float("inf"))
    return tl.where(lse == float("-inf"), float("inf"), lse * LOG2E)


@triton.jit
def _recompute_tile(
    q, k, v, do, lse_log2, qk_scale, offs_m, offs_n, mask_base, stride_mask_m, stride_mask_n, n_queries, n_keys,
    dropout_p, dropout_scale, dropout_seed, batch_head,
    row_slopes, softcap_log2, window_left, window_right, first_query, first_key,
    MASK_KIND: tl.constexpr, MASK_SHARED_ROW: tl.constexpr, APPLY_CAUSAL: tl.constexpr, USE_DROPOUT: tl.constexpr,
    EVEN_M: tl.constexpr, EVEN_N: tl.constexpr, INPUT_PRECISION: tl.constexpr,
    SOFTCAP: tl.constexpr, ALIBI: tl.constexpr, WINDOW_LEFT: tl.constexpr, WINDOW_RIGHT: tl.constexpr,
    KEYS_FIRST: tl.constexpr, FOLD_SCALE: tl.constexpr, masked_tile=None,
):
    """For one (BLOCK_M, BLOCK_N) tile (queries from `first_query`, keys from `first_key`): the
    forward's probabilities P (times the soft cap's derivative with SOFTCAP: what dS = P (dP - delta)
    needs), the weights it actually applied (P after dropout), dP = dO @ V^T through the same
    dropout mask, regenerated, and P itself (a float mask is added after the cap: its gradient is
    P (dP - delta) without the cap's derivative). The window compare runs on tiles that straddle the
    band only. With `k` and `v` None, `q` and `do` hold the products q @ K^T and dO @ V^T already (_score_products).
    KEYS_FIRST computes both dots transposed, keys as their rows (see scores_keys_first). FOLD_SCALE
    (common.scale_folds): the scores stay raw through the masks, and the scale joins the exponent's FFMA.
    `masked_tile`: see common.masked_scores (a FULL tile of a block map reads no mask)."""
    qk, capped = masked_scores(q, None if k is None else tl.trans(k), qk_scale, offs_m, offs_n, mask_base,
                               stride_mask_m, stride_mask_n, n_queries, n_keys, MASK_KIND=MASK_KIND,
                               MASK_SHARED_ROW=MASK_SHARED_ROW, APPLY_CAUSAL=APPLY_CAUSAL, EVEN_M=EVEN_M, EVEN_N=EVEN_N,
                               INPUT_PRECISION=INPUT_PRECISION, row_slopes=row_slopes, softcap_log2=softcap_log2,
                               SOFTCAP=SOFTCAP, ALIBI=ALIBI, KEYS_FIRST=KEYS_FIRST, FOLD_SCALE=FOLD_SCALE,
                               masked_tile=masked_tile)
    if WINDOW_LEFT or WINDOW_RIGHT:
        if tile_straddles_window(first_query, first_query + offs_m.shape[0] - 1, first_key,
                                 first_key + offs_n.shape[0] - 1, window_left, window_right,
                                 WINDOW_LEFT=WINDOW_LEFT, WINDOW_RIGHT=WINDOW_RIGHT):
            qk = windowed_scores(qk, offs_m, offs_n, window_left, window_right,
                                 WINDOW_LEFT=WINDOW_LEFT, WINDOW_RIGHT=WINDOW_RIGHT)
    p = tl.math.exp2(log2_units(qk, qk_scale, FOLD_SCALE=FOLD_SCALE) - lse_log2[:, None])
    if v is None:
        dp = do
    elif KEYS_FIRST:
        dp = tl.trans(tl.dot(v, tl.trans(do), input_precision=INPUT_PRECISION))
    else:
        dp = tl.dot(do, tl.trans(v), input_precision=INPUT_PRECISION)
    p_applied = p
    if USE_DROPOUT:
        keep = dropout_keep(dropout_seed, batch_head, offs_m, offs_n, dropout_p)
        p_applied = tl.where(keep, p * dropout_scale, 0.0)
        dp = tl.where(keep, dp * dropout_scale, 0.0)
    probs = p
    if SOFTCAP:
        p = p * soft_cap_slope(capped, softcap_log2)
    return p, p_applied, dp, probs


@triton.jit
def _score_products(
    q_rows, k_rows, do_rows, v_rows, offs_m, offs_n, stride_qd, stride_kd, stride_dod, stride_vd, n_queries, n_keys,
    HEAD_DIM: tl.constexpr, HEAD_DIM_V: tl.constexpr, HEAD_DIM_CHUNK: tl.constexpr,
    EVEN_M: tl.constexpr, EVEN_N: tl.constexpr, OUT_DTYPE: tl.constexpr, DOT_IN_FP32: tl.constexpr,
    INPUT_PRECISION: tl.constexpr, WIDE_OFFSETS: tl.constexpr,
):
    """q @ K^T and dO @ V^T of one (BLOCK_M, BLOCK_N) tile, their operands read from memory a head-dim
    chunk at a time (common.head_dim_chunked_dot) through the pointers to each of their rows."""
    q_dot_k = head_dim_chunked_dot(
        q_rows, k_rows, offs_m, offs_n, 0, 0, stride_qd, stride_kd, n_queries, n_keys, HEAD_DIM=HEAD_DIM,
        HEAD_DIM_CHUNK=HEAD_DIM_CHUNK, CHECK_A_ROWS=not EVEN_M, CHECK_B_ROWS=not EVEN_N, USE_TMA=False,
        OUT_DTYPE=OUT_DTYPE, DOT_IN_FP32=DOT_IN_FP32, INPUT_PRECISION=INPUT_PRECISION, WIDE_OFFSETS=WIDE_OFFSETS)
    do_dot_v = head_dim_chunked_dot(
        do_rows, v_rows, offs_m, offs_n, 0, 0, stride_dod, stride_vd, n_queries, n_keys, HEAD_DIM=HEAD_DIM_V,
        HEAD_DIM_CHUNK=HEAD_DIM_CHUNK, CHECK_A_ROWS=not EVEN_M, CHECK_B_ROWS=not EVEN_N, USE_TMA=False,
        OUT_DTYPE=OUT_DTYPE, DOT_IN_FP32=DOT_IN_FP32, INPUT_PRECISION=INPUT_PRECISION, WIDE_OFFSETS=WIDE_OFFSETS)
    return q_dot_k, do_dot_v


@triton.jit
def _load_tile_pair(q_ptrs, do_ptrs, offs_m, offs_d, offs_dv, n_queries, HEAD_DIM: tl.constexpr,
                    HEAD_DIM_V: tl.constexpr, EVEN_M: tl.constexpr, PAD_D: tl.constexpr, PAD_DV: tl.constexpr,
                    DOT_IN_FP32: tl.constexpr, EVICTION: tl.constexpr = tl.constexpr("")):
    """The (rows, D) and (rows, Dv) tiles at rows offs_m of q and dO (or of k and v: the names are the
    dQ side's), in the dots' dtype."""
    q = load_tile(q_ptrs, offs_m, offs_d, n_queries, HEAD_DIM, CHECK_ROWS=not EVEN_M, CHECK_COLS=PAD_D,
                  EVICTION=EVICTION)
    do = load_tile(do_ptrs, offs_m, offs_dv, n_queries, HEAD_DIM_V, CHECK_ROWS=not EVEN_M, CHECK_COLS=PAD_DV,
                   EVICTION=EVICTION)
    if DOT_IN_FP32:
        q = q.to(tl.float32)
        do = do.to(tl.float32)
    return q, do


@triton.jit
def _load_row_tile(ptrs, offs_m, offs_d, n_queries, HEAD_DIM: tl.constexpr, EVEN_M: tl.constexpr,
                   PAD: tl.constexpr, DOT_IN_FP32: tl.constexpr, EVICTION: tl.constexpr = tl.constexpr("evict_first")):
    """One (BLOCK_M, D) tile of q or dO at query rows offs_m, in the dots' dtype, for its last use: first
    out of L2 unless EVICTION says otherwise (with COLUMN_SPLITS the key block's other programs read
    the same rows)."""
    tile = load_tile(ptrs, offs_m, offs_d, n_queries, HEAD_DIM, CHECK_ROWS=not EVEN_M, CHECK_COLS=PAD,
                     EVICTION=EVICTION)
    return tile.to(tl.float32) if DOT_IN_FP32 else tile


@triton.jit
def _accumulate_dk_dv(
    dk, dv, k, v,
    q_base, do_base, lse_base, delta_base, mask_base,
    stride_qm, stride_qd, stride_dom, stride_dod, stride_mask_m, stride_mask_n,
    offs_n, offs_d, offs_dv, n_queries, n_keys, qk_scale, query_start, query_end,
    dropout_p, dropout_scale, dropout_seed, batch_head,
    row_slopes, softcap_log2, window_left, window_right, first_key,
    HEAD_DIM: tl.constexpr, HEAD_DIM_V: tl.constexpr, PAD_D: tl.constexpr, PAD_DV: tl.constexpr,
    BLOCK_M: tl.constexpr, MASK_KIND: tl.constexpr, MASK_SHARED_ROW: tl.constexpr,
    APPLY_CAUSAL: tl.constexpr, USE_DROPOUT: tl.constexpr,
    EVEN_M: tl.constexpr, EVEN_N: tl.constexpr, DOT_IN_FP32: tl.constexpr, INPUT_PRECISION: tl.constexpr,
    WIDE_OFFSETS: tl.constexpr, REREAD_Q_DO: tl.constexpr,
    SOFTCAP: tl.constexpr, ALIBI: tl.constexpr, WINDOW_LEFT: tl.constexpr, WINDOW_RIGHT: tl.constexpr,
    KEYS_FIRST: tl.constexpr, stride_kd=0, stride_vd=0, HEAD_DIM_CHUNK: tl.constexpr = 0,
    FOLD_SCALE: tl.constexpr = False, tile_list=None, full_steps=0, SPARSE_BLOCK: tl.constexpr = 0,
    COLUMN_SPLITS: tl.constexpr = 1, grad_offs_d=None, grad_offs_dv=None,
):
    """Add the query tiles [query_start, query_end) of one query head to a key block's dK and dV (with
    SPARSE_BLOCK, the steps [query_start, query_end) of the block map's `tile_list`: tile_lists.py).
    With HEAD_DIM_CHUNK, `k` and `v` point at each key row (columns stride_kd, stride_vd apart) and the
    score products are read a head-dim chunk at a time (_score_products); q and dO are then read whole
    for the dV and dK dots only. With COLUMN_SPLITS, dK and dV hold the columns `grad_offs_d` and
    `grad_offs_dv` only (see the kernel): the score dots read q and dO whole, the dV and dK dots
    those columns of them."""
    for step in range(query_start, query_end, 1 if SPARSE_BLOCK else BLOCK_M):
        if SPARSE_BLOCK:
            start_m, masked_tile = tile_at(step, tile_list, full_steps, BLOCK=BLOCK_M, SPARSE_BLOCK=SPARSE_BLOCK)
        else:  # every tile reads the mask, as before block maps
            start_m, masked_tile = step, None
        offs_m = index_range(start_m, BLOCK=BLOCK_M, WIDE=WIDE_OFFSETS)
        # Rows past the end read the last row instead of a masked load (no predicate per element, which
        # 16-bit d256 cannot afford): their lse is +inf, so P and dS are 0 there and they add nothing.
        rows = offs_m if EVEN_M else tl.minimum(offs_m, n_queries - 1)
        q_ptrs = tile_ptrs(q_base, rows, offs_d, stride_qm, stride_qd)
        do_ptrs = tile_ptrs(do_base, rows, offs_dv, stride_dom, stride_dod)
        if HEAD_DIM_CHUNK:  # q and do: the products q @ K^T and dO @ V^T
            q, do = _score_products(
                q_base + offs_m * stride_qm, k, do_base + offs_m * stride_dom, v, offs_m, offs_n,
                stride_qd, stride_kd, stride_dod, stride_vd, n_queries, n_keys, HEAD_DIM=HEAD_DIM,
                HEAD_DIM_V=HEAD_DIM_V, HEAD_DIM_CHUNK=HEAD_DIM_CHUNK, EVEN_M=EVEN_M, EVEN_N=EVEN_N, OUT_DTYPE=dk.dtype,
                DOT_IN_FP32=DOT_IN_FP32, INPUT_PRECISION=INPUT_PRECISION, WIDE_OFFSETS=WIDE_OFFSETS)
        elif REREAD_Q_DO:  # read again below: ask L2 to keep them
            q, do = _load_tile_pair(q_ptrs, do_ptrs, offs_m, offs_d, offs_dv, n_queries, HEAD_DIM, HEAD_DIM_V,
                                      EVEN_M=True, PAD_D=PAD_D, PAD_DV=PAD_DV, DOT_IN_FP32=DOT_IN_FP32,
                                      EVICTION="evict_last")
        else:
            q, do = _load_tile_pair(q_ptrs, do_ptrs, offs_m, offs_d, offs_dv, n_queries, HEAD_DIM, HEAD_DIM_V,
                                      EVEN_M=True, PAD_D=PAD_D, PAD_DV=PAD_DV, DOT_IN_FP32=DOT_IN_FP32,
                                      EVICTION="")
        p, p_applied, dp, _ = _recompute_tile(
            q, None if HEAD_DIM_CHUNK else k, None if HEAD_DIM_CHUNK else v, do,
            _log2_lse(lse_base + offs_m, offs_m, n_queries, EVEN_M=EVEN_M), qk_scale, offs_m, offs_n,
            mask_base, stride_mask_m, stride_mask_n, n_queries, n_keys, dropout_p, dropout_scale, dropout_seed,
            batch_head, row_slopes, softcap_log2, window_left, window_right, start_m, first_key,
            MASK_KIND=MASK_KIND, MASK_SHARED_ROW=MASK_SHARED_ROW,
            APPLY_CAUSAL=APPLY_CAUSAL, USE_DROPOUT=USE_DROPOUT,
            EVEN_M=EVEN_M, EVEN_N=EVEN_N, INPUT_PRECISION=INPUT_PRECISION,
            SOFTCAP=SOFTCAP, ALIBI=ALIBI, WINDOW_LEFT=WINDOW_LEFT, WINDOW_RIGHT=WINDOW_RIGHT, KEYS_FIRST=KEYS_FIRST,
            FOLD_SCALE=FOLD_SCALE, masked_tile=masked_tile)
        if COLUMN_SPLITS > 1:  # this program's columns of dO for the dV dot (from L2: just read whole)
            do = _load_row_tile(tile_ptrs(do_base, rows, grad_offs_dv, stride_dom, stride_dod), offs_m, grad_offs_dv,
                                n_queries, HEAD_DIM_V, EVEN_M=True, PAD=PAD_DV, DOT_IN_FP32=DOT_IN_FP32, EVICTION="")
        elif HEAD_DIM_CHUNK:  # the whole dO tile for the dV dot, the whole q tile after it: never both live
            do = _load_row_tile(do_ptrs, offs_m, offs_dv, n_queries, HEAD_DIM_V, EVEN_M=True, PAD=PAD_DV,
                                DOT_IN_FP32=DOT_IN_FP32)
        elif REREAD_Q_DO:  # their last use: a second copy of each in shared memory, never live with the first
            q, do = _load_tile_pair(q_ptrs, do_ptrs, offs_m, offs_d, offs_dv, n_queries, HEAD_DIM, HEAD_DIM_V,
                                      EVEN_M=True, PAD_D=PAD_D, PAD_DV=PAD_DV, DOT_IN_FP32=DOT_IN_FP32,
                                      EVICTION="evict_first")
        dv = tl.dot(tl.trans(p_applied.to(do.dtype)), do, dv, input_precision=INPUT_PRECISION, out_dtype=dv.dtype)
        if EVEN_M:
            delta = tl.load(delta_base + offs_m)
        else:
            delta = tl.load(delta_base + offs_m, mask=offs_m < n_queries, other=0.0)
        ds = p * (dp - delta[:, None])
        if COLUMN_SPLITS > 1:
            q = _load_row_tile(tile_ptrs(q_base, rows, grad_offs_d, stride_qm, stride_qd), offs_m, grad_offs_d,
                               n_queries, HEAD_DIM, EVEN_M=True, PAD=PAD_D, DOT_IN_FP32=DOT_IN_FP32, EVICTION="")
        elif HEAD_DIM_CHUNK:
            q = _load_row_tile(q_ptrs, offs_m, offs_d, n_queries, HEAD_DIM, EVEN_M=True, PAD=PAD_D,
                               DOT_IN_FP32=DOT_IN_FP32)
        dk = tl.dot(tl.trans(ds.to(q.dtype)), q, dk, input_precision=INPUT_PRECISION, out_dtype=dk.dtype)
    return dk, dv


@autotune(**_autotune(BACKWARD_DK_DV_TILES))
@heuristics({
    **EVEN_LENGTHS,
    "KEYS_FIRST": lambda args: scores_keys_first(args["q_ptr"].dtype, args["BLOCK_M"], args["BLOCK_N"]),
})
@triton.jit(do_not_specialize=["dropout_seed", "aligned_lengths"])
def _attention_backward_dk_dv_kernel(
    q_ptr, k_ptr, v_ptr, dout_ptr, lse_ptr, delta_ptr, dk_ptr, dv_ptr, mask_ptr, key_range_ptr,
    cu_seqlens_q_ptr, cu_seqlens_k_ptr,
    slopes_ptr, stride_slopes_b, sinks_ptr, softcap_log2, window_left, window_right,
    tile_lists_ptr, stride_lists_b, stride_lists_h, stride_lists_block,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_dob, stride_doh, stride_dom, stride_dod,
    stride_dkb, stride_dkh, stride_dkn, stride_dkd,
    stride_dvb, stride_dvh, stride_dvn, stride_dvd,
    stride_mask_b, stride_mask_h, stride_mask_m, stride_mask_n, stride_stat_b, stride_stat_h,
    n_heads, group_size, n_queries, n_keys, qk_scale, sm_scale, dropout_p, dropout_scale, dropout_seed,
    seq_bucket_q, seq_bucket_k, aligned_lengths,  # only steer the autotuner's cache key (and pruner)
    HEAD_DIM: tl.constexpr, HEAD_DIM_V: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
    MASK_KIND: tl.constexpr, MASK_SHARED_ROW: tl.constexpr,
    USE_KEY_RANGE: tl.constexpr, IS_CAUSAL: tl.constexpr, USE_DROPOUT: tl.constexpr,
    ACC_DTYPE: tl.constexpr, DOT_IN_FP32: tl.constexpr, INPUT_PRECISION: tl.constexpr, WIDE_OFFSETS: tl.constexpr,
    REREAD_Q_DO: tl.constexpr, HEAD_DIM_CHUNK: tl.constexpr, VARLEN: tl.constexpr,
    SOFTCAP: tl.constexpr, ALIBI: tl.constexpr, USE_SINKS: tl.constexpr,
    WINDOW_LEFT: tl.constexpr, WINDOW_RIGHT: tl.constexpr, FOLD_SCALE: tl.constexpr, SPARSE_BLOCK: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, EVEN_M: tl.constexpr, EVEN_N: tl.constexpr, KEYS_FIRST: tl.constexpr,
    COLUMN_SPLITS: tl.constexpr = 1,
):
    """dK and dV of one block of BLOCK_N keys. COLUMN_SPLITS (a tile's, configs.TileConfig.column_splits):
    that many programs share the key block, each holding dK and dV for its own share of their columns
    (16-bit d256, where both whole fp32 accumulators take 128 registers a thread); every program
    recomputes the block's scores and dP (two programs: 1.5 times the dots)."""
    start_n = tl.program_id(0)
    grad_offs_d, grad_offs_dv = None, None
    if COLUMN_SPLITS > 1:
        tl.static_assert(not (HEAD_DIM_CHUNK or REREAD_Q_DO), "COLUMN_SPLITS reads q and dO whole")
        column_split = start_n % COLUMN_SPLITS
        start_n = start_n // COLUMN_SPLITS
        grad_offs_d = index_range(column_split * (BLOCK_D // COLUMN_SPLITS), BLOCK=BLOCK_D // COLUMN_SPLITS,
                                  WIDE=WIDE_OFFSETS)
        grad_offs_dv = index_range(column_split * (BLOCK_DV // COLUMN_SPLITS), BLOCK=BLOCK_DV // COLUMN_SPLITS,
                                   WIDE=WIDE_OFFSETS)
    n_kv_heads = n_heads // group_size
    batch_head = tl.program_id(1)
    batch = (batch_head // n_kv_heads).to(tl.int64)
    kv_head = (batch_head % n_kv_heads).to(tl.int64)
    # VARLEN: batch is a packed sequence; its rows start at query_row0 / key_row0 (sequences.py).
    query_row0, n_queries = sequence_rows(cu_seqlens_q_ptr, batch, n_queries, VARLEN=VARLEN)
    key_row0, n_keys = sequence_rows(cu_seqlens_k_ptr, batch, n_keys, VARLEN=VARLEN)
    if VARLEN:
        if start_n * BLOCK_N >= n_keys:  # the grid is sized for the longest sequence
            return

    offs_n = index_range(start_n * BLOCK_N, BLOCK=BLOCK_N, WIDE=WIDE_OFFSETS)
    offs_d = index_range(0, BLOCK=BLOCK_D, WIDE=WIDE_OFFSETS)
    offs_dv = index_range(0, BLOCK=BLOCK_DV, WIDE=WIDE_OFFSETS)
    k_base = k_ptr + batch * stride_kb + kv_head * stride_kh + key_row0 * stride_kn
    v_base = v_ptr + batch * stride_vb + kv_head * stride_vh + key_row0 * stride_vn
    if HEAD_DIM_CHUNK:  # each key row's pointer: _accumulate_dk_dv reads k and v a head-dim chunk at a time
        k = k_base + offs_n * stride_kn
        v = v_base + offs_n * stride_vn
    else:
        k, v = _load_tile_pair(tile_ptrs(k_base, offs_n, offs_d, stride_kn, stride_kd),
                               tile_ptrs(v_base, offs_n, offs_dv, stride_vn, stride_vd), offs_n, offs_d, offs_dv,
                               n_keys, HEAD_DIM, HEAD_DIM_V, EVEN_M=EVEN_N, PAD_D=BLOCK_D != HEAD_DIM,
                               PAD_DV=BLOCK_DV != HEAD_DIM_V, DOT_IN_FP32=DOT_IN_FP32)
    dk = tl.zeros([BLOCK_N, BLOCK_D // COLUMN_SPLITS], dtype=ACC_DTYPE)
    dv = tl.zeros([BLOCK_N, BLOCK_DV // COLUMN_SPLITS], dtype=ACC_DTYPE)

    # Query tiles: causal rows below the block's first key never see it; rows from the end of the
    # block's diagonal on see all of its keys (no compare). Both bounds sit on the BLOCK_M grid.
    query_start = 0
    if IS_CAUSAL:
        query_start = (start_n * BLOCK_N) // BLOCK_M * BLOCK_M
        diagonal_end = tl.minimum(tl.cdiv((start_n + 1) * BLOCK_N, BLOCK_M) * BLOCK_M, n_queries)
    else:
        diagonal_end = query_start
    if USE_KEY_RANGE:  # a key block outside the attended span gets no gradient: visit no query
        block_attended = (start_n * BLOCK_N < tl.load(key_range_ptr + 2 * batch + 1)) & \
                         ((start_n + 1) * BLOCK_N > tl.load(key_range_ptr + 2 * batch))
        query_end = tl.where(block_attended, n_queries, 0)
    else:
        query_end = n_queries
    # Window: the query tiles whose rows see some key of the block (row i sees keys i - left .. i + right,
    # so key j is seen by queries j - right .. j + left).
    query_start, diagonal_end, query_end = clip_to_window(
        query_start, diagonal_end, query_end, start_n * BLOCK_N, start_n * BLOCK_N + BLOCK_N - 1, window_right,
        window_left, n_queries, BLOCK=BLOCK_M, HAS_BEFORE=WINDOW_RIGHT, HAS_AFTER=WINDOW_LEFT)

    for group_member in range(group_size):
        head = kv_head * group_size + group_member
        row_slopes = 0.0
        if ALIBI:
            row_slopes = tl.zeros([BLOCK_M], dtype=tl.float32) + per_row_values(
                slopes_ptr, batch * stride_slopes_b + head, True, LOG2E)
        q_base = q_ptr + batch * stride_qb + head * stride_qh + query_row0 * stride_qm
        do_base = dout_ptr + batch * stride_dob + head * stride_doh + query_row0 * stride_dom
        row_base = batch * stride_stat_b + head * stride_stat_h + query_row0
        mask_base = mask_ptr + batch * stride_mask_b + head * stride_mask_h
        tile_list, full_steps = tile_lists_ptr, 0
        if SPARSE_BLOCK:  # the query tiles the block map lists for this key block and head
            tile_list, full_steps, listed_steps = listed_tiles(
                tile_lists_ptr, batch, head, start_n * BLOCK_N // SPARSE_BLOCK, stride_lists_b, stride_lists_h,
                stride_lists_block, BLOCK=BLOCK_M, SPARSE_BLOCK=SPARSE_BLOCK)
        # A causal key block visits the query tiles on its diagonal first, with the causal compare; with
        # a block map, the listed tiles in one pass, the PARTIAL ones with the compare.
        for past_diagonal in tl.static_range(0 if IS_CAUSAL and not SPARSE_BLOCK else 1, 2):
            if SPARSE_BLOCK:
                first_step, last_step = 0, listed_steps
            elif past_diagonal:
                first_step, last_step = diagonal_end, query_end
            else:
                first_step, last_step = query_start, tl.minimum(diagonal_end, query_end)
            dk, dv = _accumulate_dk_dv(
                dk, dv, k, v, q_base, do_base, lse_ptr + row_base, delta_ptr + row_base, mask_base,
                stride_qm, stride_qd, stride_dom, stride_dod, stride_mask_m, stride_mask_n,
                offs_n, offs_d, offs_dv, n_queries, n_keys, qk_scale, first_step, last_step,
                dropout_p, dropout_scale, dropout_seed, batch * n_heads + head,
                row_slopes, softcap_log2, window_left, window_right, start_n * BLOCK_N,
                HEAD_DIM=HEAD_DIM, HEAD_DIM_V=HEAD_DIM_V, PAD_D=BLOCK_D != HEAD_DIM, PAD_DV=BLOCK_DV != HEAD_DIM_V,
                BLOCK_M=BLOCK_M, MASK_KIND=MASK_KIND, MASK_SHARED_ROW=MASK_SHARED_ROW,
                APPLY_CAUSAL=past_diagonal == 0 or (IS_CAUSAL and SPARSE_BLOCK != 0), USE_DROPOUT=USE_DROPOUT,
                EVEN_M=EVEN_M, EVEN_N=EVEN_N, DOT_IN_FP32=DOT_IN_FP32, INPUT_PRECISION=INPUT_PRECISION,
                WIDE_OFFSETS=WIDE_OFFSETS, REREAD_Q_DO=REREAD_Q_DO,
                SOFTCAP=SOFTCAP, ALIBI=ALIBI, WINDOW_LEFT=WINDOW_LEFT, WINDOW_RIGHT=WINDOW_RIGHT, KEYS_FIRST=KEYS_FIRST,
                stride_kd=stride_kd, stride_vd=stride_vd, HEAD_DIM_CHUNK=HEAD_DIM_CHUNK, FOLD_SCALE=FOLD_SCALE,
                tile_list=tile_list, full_steps=full_steps, SPARSE_BLOCK=SPARSE_BLOCK,
                COLUMN_SPLITS=COLUMN_SPLITS, grad_offs_d=grad_offs_d, grad_offs_dv=grad_offs_dv)

    dk = dk * sm_scale
    if COLUMN_SPLITS > 1:  # this program's columns
        offs_d, offs_dv = grad_offs_d, grad_offs_dv
    dk_ptrs = tile_ptrs(dk_ptr + batch * stride_dkb + kv_head * stride_dkh + key_row0 * stride_dkn,
                        offs_n, offs_d, stride_dkn, stride_dkd)
    dv_ptrs = tile_ptrs(dv_ptr + batch * stride_dvb + kv_head * stride_dvh + key_row0 * stride_dvn,
                        offs_n, offs_dv, stride_dvn, stride_dvd)
    tl.store(dk_ptrs, dk.to(dk_ptr.dtype.element_ty), mask=(offs_n[:, None] < n_keys) & (offs_d[None, :] < HEAD_DIM))
    tl.store(dv_ptrs, dv.to(dv_ptr.dtype.element_ty), mask=(offs_n[:, None] < n_keys) & (offs_dv[None, :] < HEAD_DIM_V))


@triton.jit
def _store_score_gradient(dmask_rows, ds, offs_m, offs_n, stride_dmask_n, n_queries, n_keys,
                         EVEN_M: tl.constexpr, EVEN_N: tl.constexpr):
    """Store a (BLOCK_M, BLOCK_N) tile of dS, the gradient of the softmax's input scores, which is
    that of a float mask added to them, in the mask gradient's dtype; `dmask_rows` point at each
    query row."""
    ptrs = dmask_rows[:, None] + offs_n[None, :] * stride_dmask_n
    value = ds.to(dmask_rows.dtype.element_ty)
    if EVEN_M and EVEN_N:
        tl.store(ptrs, value)
    else:
        tl.store(ptrs, value, mask=(offs_m[:, None] < n_queries) & (offs_n[None, :] < n_keys))


@triton.jit
def _zero_score_gradient(dmask_rows, offs_m, key_start, key_end, stride_dmask_n, n_queries, n_keys,
                         BLOCK_N: tl.constexpr, WIDE_OFFSETS: tl.constexpr, EVEN_M: tl.constexpr,
                         EVEN_N: tl.constexpr):
    """Zeros for dS on the key tiles [key_start, key_end) (on the BLOCK_N grid) a query block skips."""
    zeros = tl.zeros([offs_m.shape[0], BLOCK_N], dtype=dmask_rows.dtype.element_ty)
    for start_n in range(key_start, key_end, BLOCK_N):
        offs_n = index_range(start_n, BLOCK=BLOCK_N, WIDE=WIDE_OFFSETS)
        _store_score_gradient(dmask_rows, zeros, offs_m, offs_n, stride_dmask_n, n_queries, n_keys,
                             EVEN_M=EVEN_M, EVEN_N=EVEN_N)


@triton.jit
def _accumulate_dq(
    dq, q, do, lse_log2, delta,
    k_base, v_base, mask_base,
    stride_kn, stride_kd, stride_vn, stride_vd, stride_mask_m, stride_mask_n,
    offs_m, offs_d, offs_dv, n_queries, n_keys, qk_scale, key_start, key_end,
    dropout_p, dropout_scale, dropout_seed, batch_head,
    row_slopes, softcap_log2, window_left, window_right, first_query,
    HEAD_DIM: tl.constexpr, HEAD_DIM_V: tl.constexpr, PAD_D: tl.constexpr, PAD_DV: tl.constexpr,
    BLOCK_N: tl.constexpr, MASK_KIND: tl.constexpr, MASK_SHARED_ROW: tl.constexpr,
    APPLY_CAUSAL: tl.constexpr, USE_DROPOUT: tl.constexpr,
    EVEN_M: tl.constexpr, EVEN_N: tl.constexpr, DOT_IN_FP32: tl.constexpr, INPUT_PRECISION: tl.constexpr,
    WIDE_OFFSETS: tl.constexpr,
    SOFTCAP: tl.constexpr, ALIBI: tl.constexpr, WINDOW_LEFT: tl.constexpr, WINDOW_RIGHT: tl.constexpr,
    stride_qd=0, stride_dod=0, HEAD_DIM_CHUNK: tl.constexpr = 0, FOLD_SCALE: tl.constexpr = False,
    dmask_rows=None, stride_dmask_n=0, MASK_GRAD: tl.constexpr = False,
    tile_list=None, full_steps=0, SPARSE_BLOCK: tl.constexpr = 0,
):
    """Add the key tiles [key_start, key_end) to a query block's dQ (with SPARSE_BLOCK, the steps
    [key_start, key_end) of the block map's `tile_list`: tile_lists.py). With HEAD_DIM_CHUNK, `q` and `do`
    point at each query row (columns stride_qd, stride_dod apart) and the score products are read a
    head-dim chunk at a time (_score_products); only the dQ dot takes a whole k tile. MASK_GRAD: each
    tile's dS is also stored, at `dmask_rows` (each query row's pointer; see _store_score_gradient)."""
    for step in range(key_start, key_end, 1 if SPARSE_BLOCK else BLOCK_N):
        if SPARSE_BLOCK:
            start_n, masked_tile = tile_at(step, tile_list, full_steps, BLOCK=BLOCK_N, SPARSE_BLOCK=SPARSE_BLOCK)
        else:  # every tile reads the mask, as before block maps
            start_n, masked_tile = step, None
        offs_n = index_range(start_n, BLOCK=BLOCK_N, WIDE=WIDE_OFFSETS)
        k = load_tile(tile_ptrs(k_base, offs_n, offs_d, stride_kn, stride_kd),
                      offs_n, offs_d, n_keys, HEAD_DIM, CHECK_ROWS=not EVEN_N, CHECK_COLS=PAD_D)
        v = load_tile(tile_ptrs(v_base, offs_n, offs_dv, stride_vn, stride_vd),
                      offs_n, offs_dv, n_keys, HEAD_DIM_V, CHECK_ROWS=not EVEN_N, CHECK_COLS=PAD_DV)
        if DOT_IN_FP32:
            k = k.to(tl.float32)
            v = v.to(tl.float32)
        if HEAD_DIM_CHUNK:
            q_dot_k, do_dot_v = _score_products(
                q, k_base + offs_n * stride_kn, do, v_base + offs_n * stride_vn, offs_m, offs_n,
                stride_qd, stride_kd, stride_dod, stride_vd, n_queries, n_keys, HEAD_DIM=HEAD_DIM,
                HEAD_DIM_V=HEAD_DIM_V, HEAD_DIM_CHUNK=HEAD_DIM_CHUNK, EVEN_M=EVEN_M, EVEN_N=EVEN_N, OUT_DTYPE=dq.dtype,
                DOT_IN_FP32=DOT_IN_FP32, INPUT_PRECISION=INPUT_PRECISION, WIDE_OFFSETS=WIDE_OFFSETS)
        else:
            q_dot_k, do_dot_v = q, do
        p, _, dp, probs = _recompute_tile(
            q_dot_k, None if HEAD_DIM_CHUNK else k, None if HEAD_DIM_CHUNK else v, do_dot_v, lse_log2, qk_scale,
            offs_m, offs_n, mask_base, stride_mask_m, stride_mask_n,
            n_queries, n_keys, dropout_p, dropout_scale, dropout_seed, batch_head,
            row_slopes, softcap_log2, window_left, window_right, first_query, start_n,
            MASK_KIND=MASK_KIND, MASK_SHARED_ROW=MASK_SHARED_ROW, APPLY_CAUSAL=APPLY_CAUSAL, USE_DROPOUT=USE_DROPOUT,
            EVEN_M=EVEN_M, EVEN_N=EVEN_N, INPUT_PRECISION=INPUT_PRECISION,
            SOFTCAP=SOFTCAP, ALIBI=ALIBI, WINDOW_LEFT=WINDOW_LEFT, WINDOW_RIGHT=WINDOW_RIGHT, KEYS_FIRST=False,
            FOLD_SCALE=FOLD_SCALE, masked_tile=masked_tile)
        dp_centered = dp - delta[:, None]
        ds = p * dp_centered
        if MASK_GRAD:  # the mask is added after the soft cap: its gradient lacks the cap's derivative
            _store_score_gradient(dmask_rows, probs * dp_centered if SOFTCAP else ds, offs_m, offs_n,
                                  stride_dmask_n, n_queries, n_keys, EVEN_M=EVEN_M, EVEN_N=EVEN_N)
        dq = tl.dot(ds.to(k.dtype), k, dq, input_precision=INPUT_PRECISION, out_dtype=dq.dtype)
    return dq


@autotune(**_autotune(BACKWARD_DQ_TILES, "MASK_GRAD"))
@heuristics(EVEN_LENGTHS)
@triton.jit(do_not_specialize=["dropout_seed", "aligned_lengths"])
def _attention_backward_dq_kernel(
    q_ptr, k_ptr, v_ptr, dout_ptr, lse_ptr, delta_ptr, dq_ptr, mask_ptr, key_range_ptr,
    cu_seqlens_q_ptr, cu_seqlens_k_ptr,
    slopes_ptr, stride_slopes_b, sinks_ptr, softcap_log2, window_left, window_right,
    tile_lists_ptr, stride_lists_b, stride_lists_h, stride_lists_block,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_dob, stride_doh, stride_dom, stride_dod,
    stride_dqb, stride_dqh, stride_dqm, stride_dqd,
    stride_mask_b, stride_mask_h, stride_mask_m, stride_mask_n, stride_stat_b, stride_stat_h,
    n_heads, group_size, n_queries, n_keys, qk_scale, sm_scale, dropout_p, dropout_scale, dropout_seed,
    seq_bucket_q, seq_bucket_k, aligned_lengths,  # only steer the autotuner's cache key (and pruner)
    dmask_ptr, stride_dmask_b, stride_dmask_h, stride_dmask_m, stride_dmask_n,  # MASK_GRAD's dS (B, Hq, Nq, Nk)
    HEAD_DIM: tl.constexpr, HEAD_DIM_V: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
    MASK_KIND: tl.constexpr, MASK_SHARED_ROW: tl.constexpr,
    USE_KEY_RANGE: tl.constexpr, IS_CAUSAL: tl.constexpr, USE_DROPOUT: tl.constexpr,
    ACC_DTYPE: tl.constexpr, DOT_IN_FP32: tl.constexpr, INPUT_PRECISION: tl.constexpr, WIDE_OFFSETS: tl.constexpr,
    HEAD_DIM_CHUNK: tl.constexpr, VARLEN: tl.constexpr, MASK_GRAD: tl.constexpr,
    SOFTCAP: tl.constexpr, ALIBI: tl.constexpr, USE_SINKS: tl.constexpr,
    WINDOW_LEFT: tl.constexpr, WINDOW_RIGHT: tl.constexpr, FOLD_SCALE: tl.constexpr, SPARSE_BLOCK: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, EVEN_M: tl.constexpr, EVEN_N: tl.constexpr,
):
    start_m, batch_head, batch, head, kv_head = query_block_coordinates(n_heads, group_size, IS_CAUSAL=IS_CAUSAL,
                                                                        HEAD_AXIS=False, WIDE_BASES=True)
    # VARLEN: batch is a packed sequence; its rows start at query_row0 / key_row0 (sequences.py).
    query_row0, n_queries = sequence_rows(cu_seqlens_q_ptr, batch, n_queries, VARLEN=VARLEN)
    key_row0, n_keys = sequence_rows(cu_seqlens_k_ptr, batch, n_keys, VARLEN=VARLEN)
    if VARLEN:
        if start_m * BLOCK_M >= n_queries:  # the grid is sized for the longest sequence
            return
    offs_m = index_range(start_m * BLOCK_M, BLOCK=BLOCK_M, WIDE=WIDE_OFFSETS)
    offs_d = index_range(0, BLOCK=BLOCK_D, WIDE=WIDE_OFFSETS)
    offs_dv = index_range(0, BLOCK=BLOCK_DV, WIDE=WIDE_OFFSETS)
    q_base = q_ptr + batch * stride_qb + head * stride_qh + query_row0 * stride_qm
    do_base = dout_ptr + batch * stride_dob + head * stride_doh + query_row0 * stride_dom
    if HEAD_DIM_CHUNK:  # each query row's pointer: _accumulate_dq reads q and dO a head-dim chunk at a time
        q = q_base + offs_m * stride_qm
        do = do_base + offs_m * stride_dom
    else:
        q, do = _load_tile_pair(tile_ptrs(q_base, offs_m, offs_d, stride_qm, stride_qd),
                                tile_ptrs(do_base, offs_m, offs_dv, stride_dom, stride_dod), offs_m, offs_d, offs_dv,
                                n_queries, HEAD_DIM, HEAD_DIM_V, EVEN_M=EVEN_M, PAD_D=BLOCK_D != HEAD_DIM,
                                PAD_DV=BLOCK_DV != HEAD_DIM_V, DOT_IN_FP32=DOT_IN_FP32)
    row_base = batch * stride_stat_b + head * stride_stat_h + query_row0
    lse_log2 = _log2_lse(lse_ptr + row_base + offs_m, offs_m, n_queries, EVEN_M=EVEN_M)
    if EVEN_M:
        delta = tl.load(delta_ptr + row_base + offs_m)
    else:
        delta = tl.load(delta_ptr + row_base + offs_m, mask=offs_m < n_queries, other=0.0)
    dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=ACC_DTYPE)

    k_base = k_ptr + batch * stride_kb + kv_head * stride_kh + key_row0 * stride_kn
    v_base = v_ptr + batch * stride_vb + kv_head * stride_vh + key_row0 * stride_vn
    mask_base = mask_ptr + batch * stride_mask_b + head * stride_mask_h
    key_start, diagonal_start, diagonal_end = key_span(
        start_m, batch, key_range_ptr, n_keys,
        BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, USE_KEY_RANGE=USE_KEY_RANGE, IS_CAUSAL=IS_CAUSAL)
    key_start, diagonal_start, diagonal_end = clip_to_window(
        key_start, diagonal_start, diagonal_end, start_m * BLOCK_M, start_m * BLOCK_M + BLOCK_M - 1, window_left,
        window_right, n_keys, BLOCK=BLOCK_N, HAS_BEFORE=WINDOW_LEFT, HAS_AFTER=WINDOW_RIGHT)
    row_slopes = 0.0
    if ALIBI:
        row_slopes = tl.zeros([BLOCK_M], dtype=tl.float32) + per_row_values(
            slopes_ptr, batch * stride_slopes_b + head, True, LOG2E)
    dmask_rows = dmask_ptr + batch * stride_dmask_b + head * stride_dmask_h + offs_m * stride_dmask_m
    tile_list, full_steps = tile_lists_ptr, 0
    if SPARSE_BLOCK:  # the key tiles the block map lists for this query block
        tile_list, full_steps, listed_steps = listed_tiles(
            tile_lists_ptr, batch, head, start_m * BLOCK_M // SPARSE_BLOCK, stride_lists_b, stride_lists_h,
            stride_lists_block, BLOCK=BLOCK_N, SPARSE_BLOCK=SPARSE_BLOCK)
    # As in the forward: the key tiles before the diagonal, then a causal block's diagonal tiles; with
    # a block map, the listed tiles in one pass, the PARTIAL ones with the compare.
    for on_diagonal in tl.static_range(2 if IS_CAUSAL and not SPARSE_BLOCK else 1):
        if SPARSE_BLOCK:
            first_step, last_step = 0, listed_steps
        elif on_diagonal:
            first_step, last_step = diagonal_start, diagonal_end
        else:
            first_step, last_step = key_start, diagonal_start
        dq = _accumulate_dq(
            dq, q, do, lse_log2, delta, k_base, v_base, mask_base,
            stride_kn, stride_kd, stride_vn, stride_vd, stride_mask_m, stride_mask_n,
            offs_m, offs_d, offs_dv, n_queries, n_keys, qk_scale, first_step, last_step,
            dropout_p, dropout_scale, dropout_seed, batch_head,
            row_slopes, softcap_log2, window_left, window_right, start_m * BLOCK_M,
            HEAD_DIM=HEAD_DIM, HEAD_DIM_V=HEAD_DIM_V, PAD_D=BLOCK_D != HEAD_DIM, PAD_DV=BLOCK_DV != HEAD_DIM_V,
            BLOCK_N=BLOCK_N, MASK_KIND=MASK_KIND, MASK_SHARED_ROW=MASK_SHARED_ROW,
            APPLY_CAUSAL=on_diagonal == 1 or (IS_CAUSAL and SPARSE_BLOCK != 0), USE_DROPOUT=USE_DROPOUT,
            EVEN_M=EVEN_M, EVEN_N=EVEN_N, DOT_IN_FP32=DOT_IN_FP32, INPUT_PRECISION=INPUT_PRECISION,
            WIDE_OFFSETS=WIDE_OFFSETS,
            SOFTCAP=SOFTCAP, ALIBI=ALIBI, WINDOW_LEFT=WINDOW_LEFT, WINDOW_RIGHT=WINDOW_RIGHT,
            stride_qd=stride_qd, stride_dod=stride_dod, HEAD_DIM_CHUNK=HEAD_DIM_CHUNK, FOLD_SCALE=FOLD_SCALE,
            dmask_rows=dmask_rows, stride_dmask_n=stride_dmask_n, MASK_GRAD=MASK_GRAD,
            tile_list=tile_list, full_steps=full_steps, SPARSE_BLOCK=SPARSE_BLOCK)
    if MASK_GRAD and not SPARSE_BLOCK:  # the key tiles the loops skipped (causal, window) get a zero gradient
        # (with a block map the launcher zeroes the whole gradient first: the skipped tiles are scattered)
        covered_end = key_start + tl.cdiv(tl.maximum(diagonal_end - key_start, 0), BLOCK_N) * BLOCK_N
        _zero_score_gradient(dmask_rows, offs_m, 0, tl.minimum(key_start, n_keys), stride_dmask_n, n_queries,
                             n_keys, BLOCK_N=BLOCK_N, WIDE_OFFSETS=WIDE_OFFSETS, EVEN_M=EVEN_M, EVEN_N=EVEN_N)
        _zero_score_gradient(dmask_rows, offs_m, covered_end, n_keys, stride_dmask_n, n_queries, n_keys,
                             BLOCK_N=BLOCK_N, WIDE_OFFSETS=WIDE_OFFSETS, EVEN_M=EVEN_M, EVEN_N=EVEN_N)

    dq = dq * sm_scale
    dq_ptrs = tile_ptrs(dq_ptr + batch * stride_dqb + head * stride_dqh + query_row0 * stride_dqm, offs_m, offs_d, stride_dqm, stride_dqd)
    tl.store(dq_ptrs, dq.to(dq_ptr.dtype.element_ty), mask=(offs_m[:, None] < n_queries) & (offs_d[None, :] < HEAD_DIM))


def scores_keys_first(dtype: torch.dtype, block_m: int, block_n: int) -> bool:
    """KEYS_FIRST of the dK/dV kernel (a heuristic of its tile): the scores and dP dots computed as
    K @ q^T and V @ dO^T (then transposed back), so that all four of its dots take their rows (the M
    of a warpgroup MMA, 64 per 4 warps on sm_90) from the BLOCK_N keys it owns, like its accumulators.
    The query tiles it streams can then be shorter than the key block (16 rows at d256, where 64 keys
    x 64 queries spill) and still run on HGMMA. 16-bit tiles with BLOCK_M < BLOCK_N only: float32's
    three TF32 dots, in HMMA layouts, spill when transposed (dK/dV d128 causal: 255 registers and 72
    bytes on sm_90, 254 and none query-first), and square 16-bit tiles gain nothing sure (d128 causal:
    254 -> 210 registers on sm_90 but 172 -> 228 on sm_80)."""
    return dtype in (torch.float16, torch.bfloat16) and block_m < block_n


def rereads_query_tiles(dtype: torch.dtype, block_d: int) -> bool:
    """REREAD_Q_DO of the dK/dV kernel: q and dO are each an operand of two dots, contracted over the head
    dim in one and over the query rows in the other, so they go through shared memory in two layouts.
    Read once, both copies are live through the whole tile: at head dim 256 in float32 (tf32x3) and
    float64 that is 192 KiB, over the A100's 163 KiB. Read again (from L2) for the dV and dK dots, each
    copy is dead before the other is made (`python -m benchmarks compile`)."""
    return dtype in (torch.float32, torch.float64) and block_d >= 256


def row_sums_of_products(out: torch.Tensor, dout: torch.Tensor) -> torch.Tensor:
    """delta (B, Hq, Nq) = rowsum(dO * O) of (B, Hq, Nq, Dv) tensors, contiguous, in the accumulator dtype."""
    batch, n_heads, n_queries, head_dim_v = out.shape
    block_dv = padded_head_dim(head_dim_v)
    delta = torch.empty(batch, n_heads, n_queries, dtype=accumulator_dtype(out.dtype), device=out.device)
    # Rows per program: 32 rows of fp32 d256 O and dO spill, 64 rows of bf16 d128 spilled 4 bytes on sm_100
    # when the lengths divide no tile (the masked loads' predicates), and 16 rows of fp32 d256 there 4
    # bytes (a reload, 64 registers); 8 rows take 32-48 registers on sm_80/sm_90/sm_100.
    if block_dv <= 128:
        delta_block = 64 if block_dv <= 64 else 32
    else:
        delta_block = 8 if out.dtype == torch.float32 else 16
    _row_sum_of_products_kernel[(triton.cdiv(n_queries, delta_block), batch * n_heads)](
        out, dout, delta, *out.stride(), *dout.stride(), n_heads, n_queries,
        HEAD_DIM_V=head_dim_v, BLOCK_M=delta_block, BLOCK_DV=block_dv, WIDE_OFFSETS=needs_wide_offsets(out, dout),
    )
    return delta


def launch_backward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    dout: torch.Tensor,
    mask: torch.Tensor | None,
    is_causal: bool,
    scale: float,
    dropout: Dropout = Dropout(),
    grads: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    sequences: PackedSequences | None = None,
    variants: AttentionVariants | None = None,
    sinks_grad: torch.Tensor | None = None,
    mask_grad: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients (dq, dk, dv) of the forward that produced `out` and `lse` (see launch_forward).

    Takes the forward's arguments (the same `dropout`, whose mask is regenerated) plus dout
    (B, Hq, Nq, Dv), any strides. `grads`, when given, are
    the (dq, dk, dv) tensors to write into (tests poison them first); else they are allocated like
    q, k and v. `sequences`: packed sequences in VARLEN mode, as in launch_forward (the grads are then
    `batched_view`s too, and lse the forward's (B, Hq, total_q) view). `variants`: the forward's
    window / softcap / ALiBi / sinks; with sinks, `sinks_grad` (like the sinks) receives their
    gradient (score_variants.sink_gradient). With a float mask, `mask_grad` (B, Hq, Nq, Nk), float32
    or the mask's dtype, receives the gradient of the mask as the kernels read it: dS, every element
    (the dQ kernel stores each score tile's, MASK_GRAD; see kernels/sdpa/custom_ops.py for why dense).
    """
    batch, n_heads, n_queries, head_dim = q.shape
    n_kv_heads, n_keys, head_dim_v = k.shape[1], k.shape[2], v.shape[3]
    dq, dk, dv = grads if grads is not None else (torch.empty_like(q), torch.empty_like(k), torch.empty_like(v))
    if dq.numel() == 0 and dk.numel() == 0:
        return dq, dk, dv
    if mask_grad is not None and (mask is None or mask.dtype == torch.bool or sequences is not None):
        raise ValueError("mask_grad: only a float mask of padded (not packed) sequences has a gradient")
    if n_queries == 0 or n_keys == 0:  # nothing attends: every gradient is zero (a sink's too: its value is 0)
        for grad in (sinks_grad, mask_grad):
            if grad is not None:
                grad.zero_()
        return dq.zero_(), dk.zero_(), dv.zero_()

    block_dv = padded_head_dim(head_dim_v)
    if sequences is None:
        delta = row_sums_of_products(out, dout)
    else:  # the packed rows of all sequences are one batch element: (Hq, total_q), like the lse
        delta = row_sums_of_products(out[:1], dout[:1]).expand(batch, -1, -1)
        n_queries, n_keys = sequences.max_seqlen_q, sequences.max_seqlen_k  # the grids follow the longest

    if sinks_grad is not None:  # packed sequences: the statistics' batch dim is one view, read once
        statistics = (lse, delta) if sequences is None else (lse[:1], delta[:1])
        sinks_grad.copy_(sink_gradient(variants.sinks, *statistics))

    mask_args = MaskArgs(mask, placeholder=q)
    kernel_variants = KernelVariants(variants, placeholder=q, accumulator=accumulator_dtype(q.dtype))
    qk_scale = scale * LOG2E.value
    common = dict(
        HEAD_DIM=head_dim, HEAD_DIM_V=head_dim_v, BLOCK_D=padded_head_dim(head_dim), BLOCK_DV=block_dv,
        MASK_KIND=mask_args.kind, MASK_SHARED_ROW=mask_args.shared_row(rows_span_heads=False),
        USE_KEY_RANGE=mask_args.key_range is not None, IS_CAUSAL=is_causal,
        USE_DROPOUT=dropout.active, WIDE_OFFSETS=needs_wide_offsets(q, k, v, dout, dq, dk, dv, mask, mask_grad),
        HEAD_DIM_CHUNK=head_dim_chunk(q.dtype, padded_head_dim(head_dim), block_dv), VARLEN=sequences is not None,
        **precision_flags(q.dtype), **kernel_variants.flags,
        FOLD_SCALE=scale_folds(qk_scale, mask_args.kind, kernel_variants.flags), SPARSE_BLOCK=mask_args.sparse_block,
    )
    if mask_grad is not None and mask_args.sparse_block:  # the tiles the block map skips are never written
        mask_grad.zero_()
    sequence_args = sequence_pointer_args(sequences, placeholder=q)
    statistic_strides = delta.stride()[:2]  # the lse is laid out like delta
    aligned = max(ALIGNED_LENGTH, mask_args.sparse_block)  # a block map's tiles run to its blocks' ends
    scalars = (n_heads, n_heads // n_kv_heads, n_queries, n_keys, qk_scale, scale,
               dropout.p, dropout.keep_scale, dropout.seed, seq_bucket(n_queries), seq_bucket(n_keys),
               int(sequences is None and n_queries % aligned == 0 and n_keys % aligned == 0))

    _attention_backward_dk_dv_kernel[lambda meta: (triton.cdiv(n_keys, meta["BLOCK_N"]) * meta.get("COLUMN_SPLITS", 1),
                                                   batch * n_kv_heads)](
        q, k, v, dout, lse, delta, dk, dv, mask_args.tensor, mask_args.key_range_arg, *sequence_args,
        *kernel_variants.args, *mask_args.tile_list_args(is_causal, variants, by_keys=True),
        *q.stride(), *k.stride(), *v.stride(), *dout.stride(), *dk.stride(), *dv.stride(), *mask_args.strides,
        *statistic_strides,
        *scalars, **common, REREAD_Q_DO=rereads_query_tiles(q.dtype, max(common["BLOCK_D"], block_dv)),
    )
    _attention_backward_dq_kernel[lambda meta: (triton.cdiv(n_queries, meta["BLOCK_M"]), batch * n_heads)](
        q, k, v, dout, lse, delta, dq, mask_args.tensor, mask_args.key_range_arg, *sequence_args,
        *kernel_variants.args, *mask_args.tile_list_args(is_causal, variants, by_keys=False),
        *q.stride(), *k.stride(), *v.stride(), *dout.stride(), *dq.stride(), *mask_args.strides,
        *statistic_strides,
        *scalars, q if mask_grad is None else mask_grad, *((0,) * 4 if mask_grad is None else mask_grad.stride()),
        **common, MASK_GRAD=mask_grad is not None,
    )
    return dq, dk, dv
