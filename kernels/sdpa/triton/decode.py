"""Split-K ("flash-decoding") attention forward for few queries over many keys.

With Nq = 1 (a decode step over a KV cache) the normal forward has one program per (batch, query
head): too few to keep the card's memory system busy, and each program streams the whole cache.
Here the keys are cut into `num_splits` chunks and two launches do the work:
1. `_split_attention_kernel`, grid (query blocks, batch * key/value heads, splits): each program
   folds one chunk of keys into a running softmax with the forward's own `attend_key_tiles`, then
   writes its normalised partial output o_s, its row max m_s (log2 units) and its row sum l_s
   (fp32, fp64 for fp64 inputs) into a workspace. The rows of its tile are the group_size x Nq
   (query head, query) pairs that share one key/value head (GQA), so K and V are read once per
   group, not once per query head.
2. `_combine_splits_kernel`, one program per (batch, query head, query): the log-sum-exp rule,
   out = sum_s w_s o_s / sum_s w_s with w_s = l_s 2^(m_s - M), M = max_s m_s, and
   lse = (M + log2(sum_s w_s)) ln 2, written into the caller's `out` (any strides) and `lse`. A split
   that attended no key has m_s = -inf, l_s = 0 and weight 0; a row with no key in any split gets
   zeros and lse = -inf, never NaN. Keeping m_s and l_s apart, rather than one lse_s = m_s + log2(l_s),
   matters for scores near finfo.min, where adding log2(l_s) would be lost to rounding and splits of
   different sizes would get equal weights.

Chunks are whole BLOCK_N tiles (the last ones may be empty), intersected with the key-padding span
when the mask gives one. Masks (bool or additive, broadcast by stride 0), head dims padded in the
kernel, Dv != D, every dtype and the score variants (window, softcap, ALiBi, sinks: see
score_variants.py; the sink joins the first split's statistics only) work as in the normal forward;
dropout and causal calls never come here (`plan_num_splits`).

`choose_num_splits` decides from the grid size, the lengths and the number of SMs; off CUDA it
returns 1. `force_num_splits(n)` overrides it for tests and benchmarks.
"""
import contextlib
import contextvars
from collections.abc import Iterator
from typing import NamedTuple

import torch
import triton
import triton.language as tl

from kernels.sdpa.triton.common import (
    INTERPRETING, LN2, LOG2E, MaskArgs, accumulator_dtype, empty_attention_output, fp32_dot_precision,
    head_dim_chunk, index_range, key_span, load_tile, needs_wide_offsets, padded_head_dim, precision_flags,
    scale_folds, seq_bucket, tile_ptrs,
)
from kernels.sdpa.triton.configs import (
    DECODE_BLOCK_M, DECODE_MAX_ROWS, DECODE_TILES, INTERPRETER_DECODE_BLOCK_M, INTERPRETER_DECODE_TILE,
    autotune_configs, head_dim_pruner,
)
from kernels.sdpa.triton.forward import attend_key_tiles, finish_rows
from kernels.sdpa.triton.score_variants import (
    VARIANT_FLAGS, KernelVariants, clip_to_window, per_row_values, start_row_stats,
)
from kernels.sdpa.variants import AttentionVariants
from kernels.shared.triton.launch_tuning import autotune, heuristics
from kernels.shared.dropout import Dropout
from kernels.shared.host_math import ceil_div, next_power_of_2
from kernels.shared.launch_plans import LaunchPlans

MAX_DECODE_QUERIES = 16  # more query rows per head amortise the key reads: the normal kernel wins
MIN_KEYS_PER_SPLIT = 256  # below this a split's fixed cost (its workspace row, the combine) dominates
MAX_SPLITS = 64  # the combine holds every split of a row in one tile
PROGRAMS_PER_MULTIPROCESSOR = 2  # the split grid aims at this many programs per SM

_forced_splits: contextvars.ContextVar[int | None] = contextvars.ContextVar("forced_splits", default=None)


@autotune(
    configs=autotune_configs(DECODE_TILES, INTERPRETER_DECODE_TILE, INTERPRETING),
    key=["keys_per_split_bucket", "BLOCK_M", "BLOCK_D", "BLOCK_DV", "MASK_KIND", "MASK_SHARED_ROW", "USE_KEY_RANGE",
         "FOLD_SCALE", *VARIANT_FLAGS],
    prune_configs_by={"early_config_prune": head_dim_pruner(DECODE_TILES)},
)
@heuristics({
    "EVEN_M": lambda args: args["group_size"] * args["n_queries"] % args["BLOCK_M"] == 0,
    "EVEN_N": lambda args: args["n_keys"] % args["BLOCK_N"] == 0,
})
@triton.jit
def _split_attention_kernel(
    q_ptr, k_ptr, v_ptr, partial_out_ptr, partial_max_ptr, partial_sum_ptr, mask_ptr, key_range_ptr,
    slopes_ptr, stride_slopes_b, sinks_ptr, softcap_log2, window_left, window_right,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_mask_b, stride_mask_h, stride_mask_m, stride_mask_n,
    n_kv_heads, group_size, n_queries, n_keys, qk_scale,
    keys_per_split_bucket,  # only steers the autotuner's cache key
    HEAD_DIM: tl.constexpr, HEAD_DIM_V: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
    MASK_KIND: tl.constexpr, MASK_SHARED_ROW: tl.constexpr, USE_KEY_RANGE: tl.constexpr, WIDE_OFFSETS: tl.constexpr,
    ACC_DTYPE: tl.constexpr, DOT_IN_FP32: tl.constexpr, INPUT_PRECISION: tl.constexpr, HEAD_DIM_CHUNK: tl.constexpr,
    SOFTCAP: tl.constexpr, ALIBI: tl.constexpr, USE_SINKS: tl.constexpr,
    WINDOW_LEFT: tl.constexpr, WINDOW_RIGHT: tl.constexpr, FOLD_SCALE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, EVEN_M: tl.constexpr, EVEN_N: tl.constexpr,
):
    split = tl.program_id(2)
    n_splits = tl.num_programs(2)
    batch_kv_head = tl.program_id(1)
    batch = (batch_kv_head // n_kv_heads).to(tl.int64)
    kv_head = (batch_kv_head % n_kv_heads).to(tl.int64)

    # Row r of the tile is query r % Nq of query head r // Nq of this key/value head's group.
    n_rows = group_size * n_queries
    rows = index_range(tl.program_id(0) * BLOCK_M, BLOCK=BLOCK_M, WIDE=WIDE_OFFSETS)
    head = kv_head * group_size + rows // n_queries
    query = rows % n_queries
    offs_d = index_range(0, BLOCK=BLOCK_D, WIDE=WIDE_OFFSETS)
    offs_dv = index_range(0, BLOCK=BLOCK_DV, WIDE=WIDE_OFFSETS)

    q_row_ptrs = q_ptr + batch * stride_qb + head * stride_qh + query * stride_qm
    if HEAD_DIM_CHUNK:  # attend_key_tiles reads q a head-dim chunk at a time
        q = q_row_ptrs
    else:
        q = load_tile(q_row_ptrs[:, None] + offs_d[None, :] * stride_qd,
                      rows, offs_d, n_rows, HEAD_DIM, CHECK_ROWS=not EVEN_M, CHECK_COLS=HEAD_DIM != BLOCK_D)
        if DOT_IN_FP32:
            q = q.to(tl.float32)
    if MASK_SHARED_ROW:  # every row reads one mask row, whatever its head and query
        mask_row_ptrs = mask_ptr + batch * stride_mask_b
    else:
        mask_row_ptrs = mask_ptr + batch * stride_mask_b + head * stride_mask_h + query * stride_mask_m

    # This split's whole tiles, clipped to the attended key span when the mask gives one.
    key_start, key_end, _ = key_span(0, batch, key_range_ptr, n_keys,
                                     BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, USE_KEY_RANGE=USE_KEY_RANGE, IS_CAUSAL=False)
    chunk = tl.cdiv(tl.cdiv(n_keys, n_splits), BLOCK_N) * BLOCK_N
    key_start = tl.maximum(key_start, split * chunk)
    key_end = tl.minimum(key_end, (split + 1) * chunk)
    # The tile's rows are queries 0 .. Nq - 1 (of several heads): the window of all of them.
    key_start, _, key_end = clip_to_window(key_start, key_end, key_end, 0, n_queries - 1, window_left, window_right,
                                           n_keys, BLOCK=BLOCK_N, HAS_BEFORE=WINDOW_LEFT, HAS_AFTER=WINDOW_RIGHT)

    row_ok = rows < n_rows
    # The sink joins each row's denominator once: in the first split's statistics.
    m_i, l_i = start_row_stats(sinks_ptr, head, row_ok & (split == 0), BLOCK_M=BLOCK_M, ACC_DTYPE=ACC_DTYPE,
                               USE_SINKS=USE_SINKS)
    row_slopes = 0.0
    if ALIBI:
        row_slopes = per_row_values(slopes_ptr, batch * stride_slopes_b + head, row_ok, LOG2E)
    acc = tl.zeros([BLOCK_M, BLOCK_DV], dtype=ACC_DTYPE)
    k_base = k_ptr + batch * stride_kb + kv_head * stride_kh
    v_base = v_ptr + batch * stride_vb + kv_head * stride_vh
    acc, m_i, l_i = attend_key_tiles(
        acc, m_i, l_i, q, k_base, v_base, mask_row_ptrs,
        stride_kn, stride_kd, stride_vn, stride_vd, stride_mask_n,
        rows, offs_d, offs_dv, n_rows, n_keys, qk_scale, key_start, key_end,
        0.0, 1.0, 0, batch_kv_head,  # no dropout: decode calls never have it (plan_num_splits)
        HEAD_DIM=HEAD_DIM, HEAD_DIM_V=HEAD_DIM_V, PAD_D=BLOCK_D != HEAD_DIM, PAD_DV=BLOCK_DV != HEAD_DIM_V,
        BLOCK_N=BLOCK_N, MASK_KIND=MASK_KIND, MASK_SHARED_ROW=MASK_SHARED_ROW, APPLY_CAUSAL=False, USE_DROPOUT=False,
        EVEN_M=EVEN_M, EVEN_N=EVEN_N, DOT_IN_FP32=DOT_IN_FP32, INPUT_PRECISION=INPUT_PRECISION,
        WIDE_OFFSETS=WIDE_OFFSETS, stride_qd=stride_qd, HEAD_DIM_CHUNK=HEAD_DIM_CHUNK,
        query_pos=query, row_slopes=row_slopes, softcap_log2=softcap_log2,
        window_left=window_left, window_right=window_right, first_row=0, last_row=n_queries - 1,
        SOFTCAP=SOFTCAP, ALIBI=ALIBI, WINDOW_LEFT=WINDOW_LEFT, WINDOW_RIGHT=WINDOW_RIGHT, FOLD_SCALE=FOLD_SCALE)
    out, _ = finish_rows(acc, m_i, l_i, EMPTY_ROWS=True)

    # Workspace rows, contiguous (B, Hq, Nq, splits[, Dv]).
    slots = ((batch * n_kv_heads * group_size + head) * n_queries + query) * n_splits + split
    tl.store(tile_ptrs(partial_out_ptr, slots, offs_dv, HEAD_DIM_V, 1), out,
             mask=row_ok[:, None] & (offs_dv[None, :] < HEAD_DIM_V))
    tl.store(partial_max_ptr + slots, m_i, mask=row_ok)
    tl.store(partial_sum_ptr + slots, l_i, mask=row_ok)


@triton.jit
def _combine_splits_kernel(
    partial_out_ptr, partial_max_ptr, partial_sum_ptr, out_ptr, lse_ptr,
    stride_ob, stride_oh, stride_om, stride_od,
    n_heads, n_queries, n_splits,
    HEAD_DIM_V: tl.constexpr, BLOCK_DV: tl.constexpr, BLOCK_S: tl.constexpr, STORE_LSE: tl.constexpr,
):
    """One (batch, query head, query) row: merge its splits by the log-sum-exp rule."""
    row = tl.program_id(0).to(tl.int64)  # (batch * Hq + head) * Nq + query
    query = row % n_queries
    head = (row // n_queries) % n_heads
    batch = row // (n_queries * n_heads)
    offs_s = tl.arange(0, BLOCK_S)
    offs_dv = tl.arange(0, BLOCK_DV)

    slots = row * n_splits + offs_s
    max_s = tl.load(partial_max_ptr + slots, mask=offs_s < n_splits, other=float("-inf"))
    sum_s = tl.load(partial_sum_ptr + slots, mask=offs_s < n_splits, other=0.0)
    row_max = tl.max(max_s, 0)
    shift = tl.where(row_max == float("-inf"), 0.0, row_max)  # no key anywhere: every weight is 0
    weights = sum_s * tl.math.exp2(max_s - shift)
    total = tl.sum(weights, 0)
    partial = load_tile(tile_ptrs(partial_out_ptr + row * n_splits * HEAD_DIM_V, offs_s, offs_dv, HEAD_DIM_V, 1),
                        offs_s, offs_dv, n_splits, HEAD_DIM_V, CHECK_ROWS=True, CHECK_COLS=BLOCK_DV != HEAD_DIM_V)
    has_keys = total > 0.0
    out = tl.sum(partial * weights[:, None], 0) / tl.where(has_keys, total, 1.0)

    out_ptrs = out_ptr + batch * stride_ob + head * stride_oh + query * stride_om + offs_dv * stride_od
    tl.store(out_ptrs, out.to(out_ptr.dtype.element_ty), mask=offs_dv < HEAD_DIM_V)
    if STORE_LSE:
        lse = (shift + tl.math.log2(tl.where(has_keys, total, 1.0))) * LN2
        tl.store(lse_ptr + row, tl.where(has_keys, lse, float("-inf")))


def launch_decode(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    scale: float,
    num_splits: int,
    out: torch.Tensor | None = None,
    lse: torch.Tensor | None = None,
    variants: AttentionVariants | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The split-K forward on validated inputs; returns (out, lse). Same arguments and results as
    `launch_forward` without causal and dropout, plus `num_splits` (1 to MAX_SPLITS) key chunks."""
    _check_num_splits(num_splits)
    if out is None:
        out = empty_attention_output(q, v)
    if out.numel() == 0:
        return out, lse

    mask_args = MaskArgs(mask, placeholder=q)
    kernel_variants = KernelVariants(variants, placeholder=q, accumulator=accumulator_dtype(q.dtype))
    qk_scale = scale * LOG2E.value
    plan = _decode_plan(q, k, v, out, lse, mask, mask_args, num_splits, variants, kernel_variants.flags,
                        scale_folds(qk_scale, mask_args.kind, kernel_variants.flags))
    workspace_dtype, device = plan.workspace_dtype, q.device
    partial_out = torch.empty(plan.partial_out_shape, dtype=workspace_dtype, device=device)
    partial_max = torch.empty(plan.partial_stats_shape, dtype=workspace_dtype, device=device)
    partial_sum = torch.empty(plan.partial_stats_shape, dtype=workspace_dtype, device=device)
    _split_attention_kernel[plan.split_grid](
        q, k, v, partial_out, partial_max, partial_sum, mask_args.tensor, mask_args.key_range_arg,
        *kernel_variants.args, *plan.split_sizes, qk_scale, plan.keys_per_split_bucket, **plan.split_constexprs,
    )
    _combine_splits_kernel[plan.combine_grid](
        partial_out, partial_max, partial_sum, out, partial_sum if lse is None else lse, *plan.combine_sizes,
        **plan.combine_constexprs,
    )
    return out, lse


class _DecodePlan(NamedTuple):
    """What a split-K launch derives from its layout and flags (see _decode_plan)."""

    workspace_dtype: torch.dtype
    partial_out_shape: tuple[int, ...]  # (B, Hq, Nq, splits, Dv)
    partial_stats_shape: tuple[int, ...]  # (B, Hq, Nq, splits)
    split_grid: tuple[int, int, int]
    split_sizes: tuple  # the strides of q, k, v and the mask, then n_kv_heads, group_size, n_queries, n_keys
    keys_per_split_bucket: int
    split_constexprs: dict
    combine_grid: tuple[int]
    combine_sizes: tuple  # out's strides, n_heads, n_queries, n_splits
    combine_constexprs: dict


_decode_plans = LaunchPlans()


def _decode_plan(q, k, v, out, lse, mask, mask_args, num_splits, variants, variant_flags, fold_scale) -> _DecodePlan:
    """The launch's plan, remembered (kernels/shared/launch_plans.py) under everything it is computed
    from: the shapes and strides of q, k, v, out and the mask, the mask's dtype, dtype, whether there is an
    lse, the splits, the variants' flags, whether the scale folds, and the switch float32 dots follow."""
    key = (q.shape, q.stride(), k.shape, k.stride(), v.shape, v.stride(), out.shape, out.stride(), lse is None,
           None if mask is None else (mask.shape, mask.stride(), mask.dtype), q.dtype, num_splits, fold_scale,
           None if variants is None else tuple(variant_flags.values()),
           fp32_dot_precision() if q.dtype is torch.float32 else None)
    plan = _decode_plans.get(key)
    if plan is None:
        plan = _decode_plans.add(key, _new_decode_plan(q, k, v, out, lse, mask, mask_args, num_splits, variant_flags,
                                                       fold_scale))
    return plan


def _new_decode_plan(q, k, v, out, lse, mask, mask_args, num_splits, variant_flags, fold_scale) -> _DecodePlan:
    batch, n_heads, n_queries, head_dim = q.shape
    n_kv_heads, n_keys, head_dim_v = k.shape[1], k.shape[2], v.shape[3]
    group_size = n_heads // n_kv_heads
    block_m = decode_block_m(group_size * n_queries, q.dtype, max(head_dim, head_dim_v))
    block_d, block_dv = padded_head_dim(head_dim), padded_head_dim(head_dim_v)
    split_constexprs = dict(
        HEAD_DIM=head_dim, HEAD_DIM_V=head_dim_v, BLOCK_D=block_d, BLOCK_DV=block_dv,
        MASK_KIND=mask_args.kind, MASK_SHARED_ROW=mask_args.shared_row(rows_span_heads=group_size > 1),
        USE_KEY_RANGE=mask_args.key_range is not None,
        WIDE_OFFSETS=needs_wide_offsets(q, k, v, mask), BLOCK_M=block_m, **precision_flags(q.dtype), **variant_flags,
        HEAD_DIM_CHUNK=head_dim_chunk(q.dtype, block_d, block_dv),
        FOLD_SCALE=fold_scale,
    )
    combine_constexprs = dict(HEAD_DIM_V=head_dim_v, BLOCK_DV=block_dv, BLOCK_S=next_power_of_2(num_splits),
                              STORE_LSE=lse is not None)
    return _DecodePlan(
        workspace_dtype=accumulator_dtype(q.dtype),
        partial_out_shape=(batch, n_heads, n_queries, num_splits, head_dim_v),
        partial_stats_shape=(batch, n_heads, n_queries, num_splits),
        split_grid=(ceil_div(group_size * n_queries, block_m), batch * n_kv_heads, num_splits),
        split_sizes=(*q.stride(), *k.stride(), *v.stride(), *mask_args.strides, n_kv_heads, group_size, n_queries,
                     n_keys),
        keys_per_split_bucket=seq_bucket(ceil_div(n_keys, num_splits)),
        split_constexprs=split_constexprs,
        combine_grid=(batch * n_heads * n_queries,),
        combine_sizes=(*out.stride(), n_heads, n_queries, num_splits),
        combine_constexprs=combine_constexprs,
    )


def decode_block_m(rows: int, dtype: torch.dtype, head_dim: int) -> int:
    """BLOCK_M for a group of `rows` (query head, query) rows: a power of two within the configured
    bounds, and no taller than the dtype's tiles take at this head dim (configs.DECODE_MAX_ROWS)."""
    smallest, largest = INTERPRETER_DECODE_BLOCK_M if INTERPRETING else DECODE_BLOCK_M
    largest = min(largest, next(rows_cap for max_head_dim, rows_cap in DECODE_MAX_ROWS.for_dtype(dtype)
                                if head_dim <= max_head_dim))
    return min(largest, max(smallest, next_power_of_2(rows)))


def choose_num_splits(programs: int, n_queries: int, n_keys: int, multiprocessors: int | None) -> int:
    """Key splits for a call whose unsplit decode grid has `programs` programs; 1 means "do not split"
    (the normal kernel runs). Splits fill the SMs (PROGRAMS_PER_MULTIPROCESSOR programs each) with at
    least MIN_KEYS_PER_SPLIT keys per split. `multiprocessors` is None off CUDA: never split there."""
    if multiprocessors is None or n_queries > MAX_DECODE_QUERIES or programs <= 0:
        return 1
    wanted = ceil_div(PROGRAMS_PER_MULTIPROCESSOR * multiprocessors, programs)
    return max(1, min(wanted, n_keys // MIN_KEYS_PER_SPLIT, MAX_SPLITS))


_multiprocessors: dict[torch.device, int | None] = {}


def multiprocessor_count(device: torch.device) -> int | None:
    """The number of SMs of a CUDA device; None for any other device. Remembered per device: reading
    `device.type` and the device's properties costs microseconds on every decode step otherwise."""
    if device in _multiprocessors:
        return _multiprocessors[device]
    count = None
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        count = torch.cuda.get_device_properties(index).multi_processor_count
    if device.index is not None or device.type != "cuda":  # "cuda" alone follows the current device
        _multiprocessors[device] = count
    return count


def plan_num_splits(q: torch.Tensor, k: torch.Tensor, is_causal: bool, dropout: Dropout | None) -> int:
    """How many key splits a forward call runs with; 1 means the normal forward kernel.

    Causal (top-left aligned, not what decode wants) and dropout calls always take the normal kernel,
    and so do empty queries (nothing to split; its launcher returns at once). Otherwise a
    `force_num_splits` block decides, else `choose_num_splits`. `dropout=None` (what the decode
    benchmarks pass) is no dropout, as `Dropout()` is."""
    if is_causal or (dropout is not None and dropout.active) or q.numel() == 0:
        return 1
    forced = _forced_splits.get()
    if forced is not None:
        return forced
    multiprocessors = multiprocessor_count(q.device)
    key = (q.shape, k.shape, q.dtype, multiprocessors)  # all the plan reads
    num_splits = _split_plans.get(key)
    if num_splits is None:
        batch, n_heads, n_queries, head_dim = q.shape
        n_kv_heads, n_keys = k.shape[1], k.shape[2]
        rows = n_heads // n_kv_heads * n_queries
        programs = batch * n_kv_heads * ceil_div(rows, decode_block_m(rows, q.dtype, head_dim))
        num_splits = _split_plans.add(key, choose_num_splits(programs, n_queries, n_keys, multiprocessors))
    return num_splits


_split_plans = LaunchPlans()  # plan_num_splits's answers


@contextlib.contextmanager
def force_num_splits(num_splits: int) -> Iterator[None]:
    """Inside the block, every Triton attention forward without causal or dropout runs with
    `num_splits` key splits (1: the normal kernel), whatever its shape: for tests and benchmarks."""
    _check_num_splits(num_splits)
    token = _forced_splits.set(num_splits)
    try:
        yield
    finally:
        _forced_splits.reset(token)


def _check_num_splits(num_splits: int) -> None:
    if not isinstance(num_splits, int) or isinstance(num_splits, bool) or not 1 <= num_splits <= MAX_SPLITS:
        raise ValueError(f"num_splits must be an int in [1, {MAX_SPLITS}], got {num_splits!r}")
