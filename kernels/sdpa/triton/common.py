"""Pieces shared by the attention forward, backward and decode kernels: tile loads, score masking, the
span of key tiles a query block visits, and the host-side preparation of masks and flags.

Conventions: scores inside the kernels are in log2 units (softmax scale times log2(e) folded into
`qk_scale`, masks multiplied by log2(e)), so exp2 replaces exp.
"""
import torch
import triton
import triton.language as tl

from kernels.sdpa.block_mask import MAP_BLOCK, tile_lists, uses_block_map
from kernels.sdpa.mask_memory import remembered_view
from kernels.sdpa.triton.configs import BLOCK_MAP_MAX_HEAD_DIM
from kernels.shared.host_math import next_power_of_2
from kernels.shared.triton.philox import philox_draws
from kernels.shared.triton_availability import INTERPRETING
from kernels.sdpa.triton.score_variants import LOG2E, varied_scores
LN2 = tl.constexpr(0.6931471805599453)

# MASK_KIND values. constexpr objects so that the kernels can compare with them; launchers pass `.value`.
MASK_NONE = tl.constexpr(0)
MASK_BOOL = tl.constexpr(1)  # True = attend
MASK_ADDITIVE = tl.constexpr(2)  # added to the scores

# An additive mask entry below this is clamped (keeping -inf as -inf) so that multiplying it by
# log2(e) cannot overflow fp32 to -inf: finfo(float32).min must still mean "tiny weight", not
# "masked out", or a row of finfo.min would return zeros where torch returns a uniform average.
_MIN_FINITE_BIAS = tl.constexpr(-2.0e38)


@triton.jit
def tile_ptrs(base, rows, cols, stride_row, stride_col):
    """Pointers to the (len(rows), len(cols)) tile of a strided 2-D view starting at `base`."""
    return base + rows[:, None] * stride_row + cols[None, :] * stride_col


@triton.jit
def index_range(start, BLOCK: tl.constexpr, WIDE: tl.constexpr):
    """start + [0, BLOCK): the indices of a tile's rows or columns, in int64 when WIDE so that an index
    times a stride past 2**31 elements stays exact (see needs_wide_offsets); int32 otherwise, which
    keeps the address arithmetic in half the registers."""
    if WIDE:
        return (start + tl.arange(0, BLOCK)).to(tl.int64)
    else:
        return start + tl.arange(0, BLOCK)


@triton.jit
def load_tile(ptrs, rows, cols, n_rows, n_cols, CHECK_ROWS: tl.constexpr, CHECK_COLS: tl.constexpr,
              EVICTION: tl.constexpr = tl.constexpr("")):
    """Load a 2-D tile, bounds-checking only the dims a constexpr says may overrun. EVICTION: the L2
    eviction policy ("evict_last", "evict_first"; "" the default)."""
    if CHECK_ROWS and CHECK_COLS:
        return tl.load(ptrs, mask=(rows[:, None] < n_rows) & (cols[None, :] < n_cols), other=0.0,
                       eviction_policy=EVICTION)
    elif CHECK_ROWS:
        return tl.load(ptrs, mask=rows[:, None] < n_rows, other=0.0, eviction_policy=EVICTION)
    elif CHECK_COLS:
        return tl.load(ptrs, mask=cols[None, :] < n_cols, other=0.0, eviction_policy=EVICTION)
    else:
        return tl.load(ptrs, eviction_policy=EVICTION)


@triton.jit
def query_block_coordinates(n_heads, group_size, IS_CAUSAL: tl.constexpr, HEAD_AXIS: tl.constexpr,
                            WIDE_BASES: tl.constexpr):
    """(query block, batch * n_heads + head, batch, head, key/value head) of a program on the
    (query blocks, heads, batch) grid with HEAD_AXIS (the forward), else on the (query blocks,
    batch * heads) grid (the dQ kernel). Causal blocks run longest first, so the short ones fill the
    tail of the grid; the launch order is the same either way. HEAD_AXIS saves the integer division
    by n_heads (14-16 SASS instructions a forward program on sm_90); the dQ kernel keeps it, as ptxas
    then allocates fewer registers there (fp16 d64 causal 64x32 on sm_80: 128, 139 without, one block
    per SM less). batch and head are int64 with WIDE_BASES (see needs_wide_bases), int32 otherwise."""
    start_m = tl.program_id(0)
    if IS_CAUSAL:
        start_m = tl.num_programs(0) - 1 - start_m
    if HEAD_AXIS:
        head = tl.program_id(1)
        batch = tl.program_id(2)
        batch_head = batch * n_heads + head
    else:
        batch_head = tl.program_id(1)
        batch = batch_head // n_heads
        head = batch_head % n_heads
    if WIDE_BASES:
        batch, head = batch.to(tl.int64), head.to(tl.int64)
    return start_m, batch_head, batch, head, head // group_size


@triton.jit
def load_mask_tile(mask_rows, offs_m, offs_n, stride_mask_n, n_rows, n_keys,
                   SHARED_ROW: tl.constexpr, EVEN_M: tl.constexpr, EVEN_N: tl.constexpr,
                   read=None, NEUTRAL: tl.constexpr = 0):
    """The (BLOCK_M, BLOCK_N) mask tile. With SHARED_ROW every row of the tile reads one mask row (a
    key-padding mask, whose query stride is 0): `mask_rows` points at it, and it is loaded once as a
    BLOCK_N vector and broadcast, instead of BLOCK_M copies through shared memory. Otherwise
    `mask_rows` holds each tile row's pointer.

    `read` (a block map's launch, tile_lists.py): False at run time for a FULL tile, whose load is
    then predicated off (no bytes read) and returns NEUTRAL, the mask value that changes no score, and
    every key bound falls to the scores' own bounds compare. A predicate rather than a branch: the load
    stays at the loop's top level, where the compiler pipelines it (behind a branch it was a plain load
    a tile, 12 async copies a tile fewer and +36 registers at 128x64 d64 on sm_90)."""
    if SHARED_ROW:
        if EVEN_N:
            row = tl.load(mask_rows + offs_n * stride_mask_n)
        else:
            row = tl.load(mask_rows + offs_n * stride_mask_n, mask=offs_n < n_keys, other=0)
        return tl.broadcast_to(row[None, :], (offs_m.shape[0], offs_n.shape[0]))
    elif read is None:
        return load_tile(mask_rows[:, None] + offs_n[None, :] * stride_mask_n,
                         offs_m, offs_n, n_rows, n_keys, CHECK_ROWS=not EVEN_M, CHECK_COLS=not EVEN_N)
    else:
        predicate = (offs_n[None, :] < n_keys) & read
        if not EVEN_M:
            predicate = predicate & (offs_m[:, None] < n_rows)
        return tl.load(mask_rows[:, None] + offs_n[None, :] * stride_mask_n, mask=predicate, other=NEUTRAL)


@triton.jit
def computed(tile):
    """`tile` unchanged, as the result of a one-element reduction instead of a load. Triton 3.6 lays
    out an MMA operand in registers by the narrowest tensor loaded anywhere upstream of it (kWidth), so
    a uint8 bool mask upstream of P would give the P dots the layout of 8-bit operands: a failed
    compile for fp64 (ConvertTritonGPUToLLVM, "fp64 don't support largeK MMA") and a 4-wide TF32
    layout for fp32. The compiler's trace stops at a reduction, which compiles to nothing here. Only
    32- and 64-bit dots take it: with 16-bit operands the cut costs registers (dK/dV d128 with key
    padding on sm_90: 248 -> 255 registers and a 72-byte spill)."""
    return tl.max(tile[:, :, None], axis=2)


@triton.jit
def masked_scores(
    q, k_t, qk_scale, offs_m, offs_n, mask_base, stride_mask_m, stride_mask_n, n_queries, n_keys,
    MASK_KIND: tl.constexpr, MASK_SHARED_ROW: tl.constexpr,
    APPLY_CAUSAL: tl.constexpr, EVEN_M: tl.constexpr, EVEN_N: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
    row_slopes, softcap_log2, SOFTCAP: tl.constexpr, ALIBI: tl.constexpr, KEYS_FIRST: tl.constexpr = False,
    FOLD_SCALE: tl.constexpr = False, masked_tile=None,
):
    """The (BLOCK_M, BLOCK_N) scores q @ k_t in log2 units (qk_scale = softmax scale * log2(e)),
    with the score variants, the key bounds, the causal diagonal and the user's mask applied; and
    the soft-capped scores (see masked_scores_from_rows, also for FOLD_SCALE and `masked_tile`).
    KEYS_FIRST: the dot is computed as (k_t^T @ q^T)^T, keys as its rows (the dK/dV kernel, see
    backward.scores_keys_first)."""
    mask_rows = mask_base if MASK_SHARED_ROW else mask_base + offs_m * stride_mask_m
    return masked_scores_from_rows(q, k_t, qk_scale, offs_m, offs_n, mask_rows, stride_mask_n, n_queries, n_keys,
                                   MASK_KIND=MASK_KIND, MASK_SHARED_ROW=MASK_SHARED_ROW, APPLY_CAUSAL=APPLY_CAUSAL,
                                   EVEN_M=EVEN_M, EVEN_N=EVEN_N, INPUT_PRECISION=INPUT_PRECISION,
                                   query_pos=offs_m, row_slopes=row_slopes, softcap_log2=softcap_log2,
                                   SOFTCAP=SOFTCAP, ALIBI=ALIBI, KEYS_FIRST=KEYS_FIRST, FOLD_SCALE=FOLD_SCALE,
                                   masked_tile=masked_tile)


@triton.jit
def masked_scores_from_rows(
    q, k_t, qk_scale, offs_m, offs_n, mask_row_ptrs, stride_mask_n, n_rows, n_keys,
    MASK_KIND: tl.constexpr, MASK_SHARED_ROW: tl.constexpr,
    APPLY_CAUSAL: tl.constexpr, EVEN_M: tl.constexpr, EVEN_N: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
    query_pos, row_slopes, softcap_log2, SOFTCAP: tl.constexpr, ALIBI: tl.constexpr,
    KEYS_FIRST: tl.constexpr = False, FOLD_SCALE: tl.constexpr = False, masked_tile=None,
):
    """masked_scores with the mask addressed by a pointer per tile row (`mask_row_ptrs`, BLOCK_M),
    so a tile's rows may come from different heads (the decode kernel packs a GQA group into one
    tile); with MASK_SHARED_ROW, by the one pointer of the row every tile row shares (see
    load_mask_tile). Rows `offs_m >= n_rows` are padding: their mask is not read. `query_pos` are
    the rows' query positions, `row_slopes` their ALiBi slopes (score_variants.varied_scores). With
    `k_t` None, `q` holds the product q @ k_t already (head_dim_chunked_dot).

    FOLD_SCALE: the scores come back unscaled (q @ k_t, masked to -inf), for a caller that applies
    `qk_scale` inside its exp2 (see scale_folds; no soft cap, ALiBi or additive mask then).

    `masked_tile` (None without a block map, tile_lists.py): False at run time for a tile the map lists
    as FULL, where the mask and the causal compare change nothing: the mask's load is predicated off
    (load_mask_tile) and the compare keeps every score.

    Returns (scores, capped): `capped` are the soft-capped scores before ALiBi and masks, which the
    backward needs for the cap's derivative (the forward drops them: no cost)."""
    if k_t is None:
        scores = q
    elif KEYS_FIRST:
        scores = tl.trans(tl.dot(tl.trans(k_t), tl.trans(q), input_precision=INPUT_PRECISION))
    else:
        scores = tl.dot(q, k_t, input_precision=INPUT_PRECISION)
    if FOLD_SCALE:
        tl.static_assert(not (SOFTCAP or ALIBI or MASK_KIND == MASK_ADDITIVE), "FOLD_SCALE needs unbiased scores")
    else:
        scores = scores * qk_scale
    capped = varied_scores(scores, query_pos, offs_n, row_slopes, softcap_log2, SOFTCAP=SOFTCAP, ALIBI=False)
    qk = varied_scores(capped, query_pos, offs_n, row_slopes, softcap_log2, SOFTCAP=False, ALIBI=ALIBI)
    if not EVEN_N:
        qk = tl.where(offs_n[None, :] < n_keys, qk, float("-inf"))
    if APPLY_CAUSAL:
        causal = offs_m[:, None] >= offs_n[None, :]
        if masked_tile is not None:
            causal = causal | (masked_tile == 0)
        qk = tl.where(causal, qk, float("-inf"))
    if MASK_KIND != MASK_NONE:
        mask_tile = load_mask_tile(mask_row_ptrs, offs_m, offs_n, stride_mask_n, n_rows, n_keys,
                                   SHARED_ROW=MASK_SHARED_ROW, EVEN_M=EVEN_M, EVEN_N=EVEN_N, read=masked_tile,
                                   NEUTRAL=1 if MASK_KIND == MASK_BOOL else 0)
        if MASK_KIND == MASK_BOOL:
            if q.dtype.primitive_bitwidth > 16:  # see computed(); 16-bit dots keep the plain load (fewer registers)
                mask_tile = computed(mask_tile)
            qk = tl.where(mask_tile != 0, qk, float("-inf"))
        else:
            bias = mask_tile.to(qk.dtype)
            bias = tl.where(bias == float("-inf"), bias, tl.maximum(bias, _MIN_FINITE_BIAS))
            qk = qk + bias * LOG2E
    return qk, capped


@triton.jit
def log2_units(scores, qk_scale, FOLD_SCALE: tl.constexpr):
    """Scores in the softmax's log2 units: times qk_scale where FOLD_SCALE left them raw (see
    scale_folds). A function, not `qk_scale if FOLD_SCALE else 1.0`: the interpreter would round that
    value to fp32."""
    if FOLD_SCALE:
        return scores * qk_scale
    else:
        return scores


@triton.jit
def head_dim_chunked_dot(
    a_rows, b_rows, offs_a, offs_b, a_first_row, b_first_row, stride_ad, stride_bd, n_a, n_b,
    HEAD_DIM: tl.constexpr, HEAD_DIM_CHUNK: tl.constexpr, CHECK_A_ROWS: tl.constexpr, CHECK_B_ROWS: tl.constexpr,
    USE_TMA: tl.constexpr, OUT_DTYPE: tl.constexpr, DOT_IN_FP32: tl.constexpr, INPUT_PRECISION: tl.constexpr,
    WIDE_OFFSETS: tl.constexpr,
):
    """a @ b^T, (len(offs_a), len(offs_b)) in OUT_DTYPE, for two (rows, HEAD_DIM) matrices read from
    memory HEAD_DIM_CHUNK columns at a time, each chunk's product added to the last (one accumulator,
    so the sum over the head dim is that of a single dot; fp32 keeps its input precision, tf32x3).

    Why: a dot operand in registers is held whole by every warp that uses it (an HMMA A operand of a
    16-row tile by all four warps), twice over for tf32x3 (its high and low TF32 halves), so a fp32
    tile at head dim 256 held across a loop cannot fit in registers. Read a chunk at a time, inside
    a loop of its own (which the compiler cannot hoist out of the caller's loop), only one chunk of
    each operand is live; the reads hit L1/L2 after the first. `a_rows` and `b_rows` point at each
    row of the two matrices (offs_a, offs_b are their indices, checked against n_a, n_b where
    CHECK_*_ROWS), or with USE_TMA are tensor descriptors read in (rows, HEAD_DIM_CHUNK) blocks from
    rows a_first_row, b_first_row (descriptors.row_tile_descriptor)."""
    product = tl.zeros([offs_a.shape[0], offs_b.shape[0]], dtype=OUT_DTYPE)
    for start_d in range(0, HEAD_DIM, HEAD_DIM_CHUNK):
        if USE_TMA:
            a = a_rows.load([a_first_row, start_d])
            b_t = tl.trans(b_rows.load([b_first_row, start_d]))
        else:
            offs_d = index_range(start_d, BLOCK=HEAD_DIM_CHUNK, WIDE=WIDE_OFFSETS)
            a = load_tile(a_rows[:, None] + offs_d[None, :] * stride_ad, offs_a, offs_d, n_a, HEAD_DIM,
                          CHECK_ROWS=CHECK_A_ROWS, CHECK_COLS=HEAD_DIM % HEAD_DIM_CHUNK != 0)
            b_t = load_tile(b_rows[None, :] + offs_d[:, None] * stride_bd, offs_d, offs_b, HEAD_DIM, n_b,
                            CHECK_ROWS=HEAD_DIM % HEAD_DIM_CHUNK != 0, CHECK_COLS=CHECK_B_ROWS)
        if DOT_IN_FP32:
            a = a.to(tl.float32)
            b_t = b_t.to(tl.float32)
        product = tl.dot(a, b_t, product, input_precision=INPUT_PRECISION, out_dtype=OUT_DTYPE)
    return product


@triton.jit
def key_span(start_m, batch, key_range_ptr, n_keys,
             BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, USE_KEY_RANGE: tl.constexpr, IS_CAUSAL: tl.constexpr):
    """The key tiles query block `start_m` visits: [key_start, diagonal_start) need no causal
    compare, [diagonal_start, diagonal_end) do. Every bound is on the BLOCK_N grid or is the end of
    the keys, so EVEN_N still describes every tile."""
    key_start = 0
    key_end = n_keys
    if USE_KEY_RANGE:
        key_start = tl.load(key_range_ptr + 2 * batch) // BLOCK_N * BLOCK_N
        key_end = tl.load(key_range_ptr + 2 * batch + 1)
    if IS_CAUSAL:
        # Keys past the block's last query row are never attended: stop there. Keys before its
        # first row are attended by every row: no causal compare for those tiles.
        diagonal_end = tl.minimum((start_m + 1) * BLOCK_M, key_end)
        diagonal_start = tl.minimum((start_m * BLOCK_M) // BLOCK_N * BLOCK_N, diagonal_end)
        diagonal_start = tl.maximum(diagonal_start, key_start)
    else:
        diagonal_end = key_end
        diagonal_start = key_end
    return key_start, diagonal_start, diagonal_end


@triton.jit
def dropout_keep(seed, batch_head, offs_m, offs_n, dropout_p):
    """Which weights of a (BLOCK_M, BLOCK_N) tile survive dropout. The Philox counter is the element's
    (key, query) position in its head's score matrix and the (batch, head) index, one 32-bit word each,
    so no two scores share a draw at any length and every head draws its own stream (see
    kernels/shared/triton/philox.py). The forward, both backward kernels and the debug mask call this
    one function, so they agree bit for bit."""
    column = tl.zeros([offs_m.shape[0], offs_n.shape[0]], dtype=tl.uint32) + offs_n.to(tl.uint32)[None, :]
    row = tl.zeros_like(column) + offs_m.to(tl.uint32)[:, None]
    stream = tl.zeros_like(column) + batch_head.to(tl.uint32)
    bits, _, _, _ = philox_draws(seed, column, row, stream)
    return tl.uint_to_uniform_float(bits) >= dropout_p


def _divides_every_tile(length_name: str, block_name: str):
    """A heuristic: the length divides the kernel's tiles on that side, and with a block map (SPARSE_BLOCK)
    its map blocks too, whose last one the listed tiles otherwise overrun; packed sequences never."""
    return lambda args: (not args["VARLEN"]
                         and args[length_name] % max(args[block_name], args["SPARSE_BLOCK"]) == 0)


# EVEN_M / EVEN_N of the forward and backward kernels: no bounds checks on that side.
EVEN_LENGTHS = {"EVEN_M": _divides_every_tile("n_queries", "BLOCK_M"),
                "EVEN_N": _divides_every_tile("n_keys", "BLOCK_N")}


def needs_wide_offsets(*tensors: torch.Tensor | None) -> bool:
    """Whether a kernel must index these tensors' tiles in int64 (WIDE_OFFSETS): some element lies
    2**31 or more elements past the start of its (row, column) matrix. Batch and head offsets are
    int64 in every kernel anyway; only a row or column index times its stride can overflow int32."""
    for tensor in tensors:
        if tensor is None:
            continue
        (rows, cols), (row_stride, col_stride) = tensor.shape[-2:], tensor.stride()[-2:]
        if max(rows - 1, 0) * abs(row_stride) + max(cols - 1, 0) * abs(col_stride) >= 2**31:
            return True
    return False


def needs_wide_bases(*tensors: torch.Tensor | None) -> bool:
    """Whether a kernel must compute its batch and head offsets in int64 (WIDE_BASES): some element of
    these tensors lies 2**31 or more elements past the tensor's start. Otherwise a (batch, head)
    matrix's offset, batch * batch stride + head * head stride, fits int32: one 32-bit product each
    and one pointer addition (needs_wide_offsets is the same question within the matrix)."""
    for tensor in tensors:
        if tensor is not None and sum((size - 1) * abs(stride)
                                      for size, stride in zip(tensor.shape, tensor.stride())) >= 2**31:
            return True
    return False


def padded_head_dim(head_dim: int) -> int:
    return max(16, next_power_of_2(head_dim))


def head_dim_chunk(dtype: torch.dtype, block_d: int, block_dv: int) -> int:
    """HEAD_DIM_CHUNK of the attention kernels: 0 to hold whole (rows, head dim) tiles as dot operands,
    else the columns per chunk of the score dots (q @ k^T, and dO @ v^T in the backward), which then
    read their operands from memory a chunk at a time (head_dim_chunked_dot). Float32 above head dim
    128 only: there, held whole as tf32x3 operands, q, k, v and dO spill every kernel (0.5-1.6 KB a
    thread); 16-bit tiles fit whole, and chunking float64 (which need only launch) would cost reads."""
    return 32 if dtype == torch.float32 and max(block_d, block_dv) > 128 else 0


def seq_bucket(length: int) -> int:
    """Coarse autotune key: lengths in the same power-of-two bucket share one tuned config."""
    return min(next_power_of_2(length), 16384)


def attended_key_range(mask: torch.Tensor) -> torch.Tensor | None:
    """(B, 2) int32 [first, last + 1) attended key per batch element, for a bool mask broadcast over
    heads and queries; None for any other mask. Device-side ops only: no host sync. A dim of size 1
    (one head, or one query: a decode step) is broadcast whatever its stride.

    The range costs about seven small device ops: it is remembered on the mask (mask_memory.py) for
    its (B, 1, 1, Nk) view, which every layer's broadcast of it shares."""
    if mask.dtype is not torch.bool:
        return None
    (batch, heads, queries, n_keys), (batch_stride, head_stride, query_stride, key_stride) = mask.shape, mask.stride()
    if (head_stride != 0 and heads != 1) or (query_stride != 0 and queries != 1):
        return None
    view_strides = (0 if batch == 1 else batch_stride, 0, 0, 0 if n_keys == 1 else key_stride)  # mask[:, :1, :1]'s
    return remembered_view(mask, mask.storage_offset(), (batch, 1, 1, n_keys), view_strides, "key_range", None,
                           lambda: _key_range(mask))


def _key_range(mask: torch.Tensor) -> torch.Tensor:
    keep = mask[:, 0, 0, :]  # (B, Nk)
    n_keys = keep.size(1)
    positions = torch.arange(n_keys, device=mask.device, dtype=torch.int32)
    first = torch.where(keep, positions, n_keys).amin(dim=1)
    last = torch.where(keep, positions + 1, 0).amax(dim=1)
    return torch.stack([first, last], dim=1).to(torch.int32).contiguous()


class MaskArgs:
    """A (B, H, Nq, Nk) mask view turned into what the kernels take: pointer, strides, kind, key span,
    block map. `placeholder` (the queries: their dtype and head dim decide whether a map is used,
    configs.BLOCK_MAP_MAX_HEAD_DIM) stands in for the tensors a launch does not have."""

    def __init__(self, mask: torch.Tensor | None, placeholder: torch.Tensor):
        self.key_range = None if mask is None else attended_key_range(mask)
        if mask is None:
            self.kind, self.tensor, self.strides = MASK_NONE.value, placeholder, (0, 0, 0, 0)
        elif mask.dtype == torch.bool:  # same bytes as uint8, which Triton loads everywhere
            self.kind, self.tensor, self.strides = MASK_BOOL.value, mask.view(torch.uint8), mask.stride()
        else:
            self.kind, self.tensor, self.strides = MASK_ADDITIVE.value, mask, mask.stride()
        self.key_range_arg = placeholder if self.key_range is None else self.key_range
        self._mask = mask
        # SPARSE_BLOCK of the forward and backward kernels: the block map's tile size, or 0 (block_mask.py)
        skips = (mask is not None and uses_block_map(mask, self.shared_row(rows_span_heads=False))
                 and padded_head_dim(placeholder.size(-1)) <= BLOCK_MAP_MAX_HEAD_DIM.for_dtype(placeholder.dtype))
        self.sparse_block = MAP_BLOCK if skips else 0

    def tile_list_args(self, is_causal: bool, variants, by_keys: bool) -> tuple:
        """(lists, batch stride, head stride, block stride) of the block map's tile lists (tile_lists.py;
        per query block, or per key block `by_keys`) with the causal diagonal and the window folded in;
        placeholders without a map."""
        if not self.sparse_block:
            return self.tensor, 0, 0, 0
        window = None if variants is None else variants.window
        lists = tile_lists(self._mask, is_causal, window, by_keys)
        return lists, *lists.stride()[:3]

    def shared_row(self, rows_span_heads: bool) -> bool:
        """MASK_SHARED_ROW: every row of a kernel's tile reads the same mask row, as for a key-padding
        mask (query stride 0, or one query). `rows_span_heads`: the tile's rows come from several heads
        (split-K decode), which then must share the row too."""
        mask = self._mask
        if mask is None:
            return False
        one_row_per_head = mask.size(2) == 1 or mask.stride(2) == 0
        return one_row_per_head and (not rows_span_heads or mask.size(1) == 1 or mask.stride(1) == 0)


# The softmax scale times log2(e), as the fp32 kernel argument, must lie in [tiny, max] to be folded.
_FP32_TINY = torch.finfo(torch.float32).tiny
_FP32_MAX = torch.finfo(torch.float32).max


def scale_folds(qk_scale: float, mask_kind: int, variant_flags: dict) -> bool:
    """FOLD_SCALE of the attention kernels: the scores stay raw, s = q.k, through the masks, and
    `qk_scale` (softmax scale * log2(e)) is applied inside the exp2, one FFMA a score instead of an
    FMUL first and a subtraction after: exp2(s * qk_scale - m) with the row max m = max(s) * qk_scale
    in the forward and split-K decode (forward.attend_key_tiles), exp2(s * qk_scale - lse) in the
    backward (backward._recompute_tile). Exact only where nothing is added to the scaled scores before
    the softmax (`mask_kind` not additive, no soft cap or ALiBi in `variant_flags`, the KernelVariants
    flags) and the scale the kernel receives, an fp32, is a positive normal number: then
    max(s * c) = max(s) * c and a masked score stays -inf * c = -inf; a scale of 0 would turn it into
    NaN, a negative one turns the max into the min. The check runs in float64, conservatively: a
    value that fp32 would round into the range is refused."""
    return (_FP32_TINY <= qk_scale <= _FP32_MAX and mask_kind != MASK_ADDITIVE.value
            and not variant_flags["SOFTCAP"] and not variant_flags["ALIBI"])


def empty_attention_output(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The (B, Hq, Nq, Dv) output of q (B, Hq, Nq, D) and v (.., Dv), laid out (B, Nq, Hq, Dv) in memory
    like torch's flash backend, so that merging heads afterwards is a free view."""
    batch, heads, n_queries, _ = q.shape
    head_dim_v = v.shape[3]
    # The strides of that memory transposed, as torch gives a contiguous tensor (a dim of size 0 counts as 1):
    # one allocation, where allocating (B, Nq, Hq, Dv) and transposing it made a view too.
    row = (heads or 1) * (head_dim_v or 1)
    return q.new_empty_strided((batch, heads, n_queries, head_dim_v), ((n_queries or 1) * row, head_dim_v or 1, row, 1))


def accumulator_dtype(dtype: torch.dtype) -> torch.dtype:
    """Softmax statistics and accumulators: fp32, or fp64 for fp64 inputs (exact checks, gradcheck)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def fp32_dot_precision() -> str:
    """How the kernels compute dots of float32 inputs, following torch's switch for float32 matmuls:

    - "tf32" where torch allows TF32 (`torch.backends.cuda.matmul.allow_tf32 = True`,
      `fp32_precision = "tf32"`, `torch.set_float32_matmul_precision("high")` or "medium");
    - "ieee", exact float32 on the FMA units (several times slower), where torch was told to compute
      float32 matmuls exactly (`allow_tf32 = False`, `fp32_precision = "ieee"`,
      `set_float32_matmul_precision("highest")`);
    - otherwise, torch's default, "tf32x3": each dot as three TF32 tensor-core dots, whose error is
      that of float32 math (measured: `python -m benchmarks.fp32_precision`).
    Read from `fp32_precision` only: reading `allow_tf32` raises once both of torch's APIs were used.
    """
    if _fp32_matmul_precision is None:  # a torch without the fp32_precision API
        return "tf32" if torch.backends.cuda.matmul.allow_tf32 else "tf32x3"
    return _DOT_PRECISIONS.get(_fp32_matmul_precision("cuda", "matmul"), "tf32x3")


# What `torch.backends.cuda.matmul.fp32_precision` reads, without its module's __getattr__ (a quarter of
# this function's time on every float32 launch); None where torch lacks the API.
_fp32_matmul_precision = getattr(torch._C, "_get_fp32_precision_getter", None)
_DOT_PRECISIONS = {"ieee": "ieee", "tf32": "tf32", "bf16": "tf32"}


def precision_flags(dtype: torch.dtype) -> dict:
    """ACC_DTYPE: see accumulator_dtype. DOT_IN_FP32: the interpreter's bf16 dot is wrong, fp32
    operands are exact. INPUT_PRECISION: see fp32_dot_precision (fp16/bf16 dots are exact products
    anyway; fp64 dots run on the FMA units)."""
    return dict(
        ACC_DTYPE=tl.float64 if dtype == torch.float64 else tl.float32,
        DOT_IN_FP32=INTERPRETING and dtype == torch.bfloat16,
        INPUT_PRECISION=fp32_dot_precision() if dtype == torch.float32 else "ieee",
    )
