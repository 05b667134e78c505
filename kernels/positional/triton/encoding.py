"""Fused sinusoidal positional encoding: out = dropout(src * scale + pe[pos]) in one read and one write.

pe[pos, 2i] = sin(pos / 10000^(2i/d)) and pe[pos, 2i+1] = cos(pos / 10000^(2i/d)) are computed in
registers, never read from a table. One program owns a BLOCK_ROWS x BLOCK_COLS tile of the
(B * N, d) rows: contiguous columns give 16-byte vector loads and stores when the last dim has
stride 1, and each row's position and source address are computed once per tile row.

Variants are constexpr flags of this one kernel:
- GATHER: the source rows are picked by token ids from a (vocab, d) table (the fused embedding);
  otherwise they are the rows of a (B, N, d) tensor read through its strides.
- HAS_POSITION_IDS: positions come from a (B, N) integer tensor (left-padded batches); otherwise
  position = position_offset + n (decode step t passes offset t).
- ADD_ENCODING: off for the backward, which is the same map without the encoding: dx = dropout(dy * scale).
- DROPOUT: the keep mask is a pure function of (seed, row, column), so the backward regenerates it.

Precision: positions, frequencies (exp2 of a folded constant) and angles are float32, as in a
float32 table. Angles are reduced to [-pi, pi] (Cody-Waite with a two-part 2pi, exact while
angle / 2pi < 2**16), then by quarter turns to [-pi/4, pi/4], where two polynomials give sin and cos
to about one float32 ulp (_sin_cos_within_half_turn), so what is left is the float32 rounding of the
frequency and of position * frequency: an error in proportion to the position, the same order as a float32 table's
(measured in the interpreter: at most 2 x position x 2**-24). Positions must stay below 2**24, where
float32 stops representing every integer. Each (2i, 2i+1) column pair shares one angle, one
reduction, one sin and one cos.
"""
import math
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from kernels.shared.dropout import Dropout
from kernels.shared.triton.philox import philox_draws
from kernels.shared.triton_availability import INTERPRETING

INV_TWO_PI = tl.constexpr(1 / (2 * math.pi))
TWO_PI_HI = tl.constexpr(6.28125)  # 201 / 32: a multiple of it by any integer below 2**16 is exact in float32
TWO_PI_LO = tl.constexpr(2 * math.pi - 6.28125)
TWO_OVER_PI = tl.constexpr(2 / math.pi)
HALF_PI_HI = tl.constexpr(1.5703125)  # 201 / 128: exact times the quarter-turn counts -2..2
HALF_PI_LO = tl.constexpr(math.pi / 2 - 1.5703125)
# Polynomials on [-pi/4, pi/4] (z = r * r), our own fit (least squares reweighted toward minimax on
# Chebyshev nodes; evaluated in float32 they err by about one ulp of the result, 1.2 at most):
# sin r = r + r * z * (S1 + z * (S2 + z * S3)), cos r = 1 - z / 2 + z * z * (C1 + z * (C2 + z * C3)).
SIN_1, SIN_2, SIN_3 = tl.constexpr(-0.16666655242443085), tl.constexpr(0.008332177996635437), \
    tl.constexpr(-0.0001951729936990887)
COS_1, COS_2, COS_3 = tl.constexpr(0.04166664555668831), tl.constexpr(-0.001388736767694354), \
    tl.constexpr(2.4438451873720624e-05)


@dataclass(frozen=True)
class Positions:
    """Where each row's position comes from: `ids` (B, N) integers when given, else offset + n."""

    offset: int = 0
    ids: torch.Tensor | None = None


@triton.jit
def _sinusoid(positions, col_start, FREQ_LOG2_STEP: tl.constexpr, BLOCK_ROWS: tl.constexpr, BLOCK_COLS: tl.constexpr):
    """pe at rows `positions` and columns [col_start, col_start + BLOCK_COLS), float32.

    Works on column pairs (2i, 2i+1): one angle, one range reduction, one sin and one cos per pair.
    """
    pairs = col_start // 2 + tl.arange(0, BLOCK_COLS // 2)
    inv_freq = tl.math.exp2((2 * pairs).to(tl.float32) * FREQ_LOG2_STEP)  # 10000^(-2i/d); exactly 1 for i = 0
    angles = positions.to(tl.float32)[:, None] * inv_freq[None, :]
    # Cody-Waite reduction to [-pi, pi]: turns * TWO_PI_HI is exact (8-bit constant), so is the
    # subtraction from the angle; the small remainder TWO_PI_LO carries the rest of 2pi.
    turns = tl.math.floor(angles * INV_TWO_PI + 0.5)
    reduced = (angles - turns * TWO_PI_HI) - turns * TWO_PI_LO
    sin, cos = _sin_cos_within_half_turn(reduced)
    pe = tl.join(sin, cos)  # (rows, pairs, 2): column 2i + j
    return tl.reshape(pe, [BLOCK_ROWS, BLOCK_COLS])


@triton.jit
def _sin_cos_within_half_turn(x):
    """sin x and cos x for x in [-pi, pi], in float32 to about one ulp. tl.sin / tl.cos (libdevice) carry
    a slow path for huge arguments (a Payne-Hanek reduction through a local-memory array), inlined for
    every element although these angles are already reduced: it cost the 64x64 tile of a 16-bit d_model
    64 an 8-byte spill. Here: quarter turns q = round(2x / pi) in -2..2, r = x - q pi/2 in [-pi/4, pi/4],
    two polynomials, and the quadrant q mod 4 picks and signs them."""
    quarter_turns = tl.math.floor(x * TWO_OVER_PI + 0.5)
    r = (x - quarter_turns * HALF_PI_HI) - quarter_turns * HALF_PI_LO
    z = r * r
    sin_r = r + r * z * (SIN_1 + z * (SIN_2 + z * SIN_3))
    cos_r = 1.0 - 0.5 * z + z * z * (COS_1 + z * (COS_2 + z * COS_3))
    quadrant = quarter_turns.to(tl.int32) & 3  # sin, cos = (s, c), (c, -s), (-s, -c), (-c, s)
    odd = (quadrant & 1) != 0
    sin = tl.where(odd, cos_r, sin_r)
    cos = tl.where(odd, sin_r, cos_r)
    sin = tl.where(quadrant >= 2, -sin, sin)
    cos = tl.where((quadrant == 1) | (quadrant == 2), -cos, cos)
    return sin, cos


@triton.jit
def _keep_mask(seed, rows, cols, d_model, keep_threshold, BLOCK_ROWS: tl.constexpr, BLOCK_COLS: tl.constexpr):
    """Dropout keep mask of a tile. One Philox call yields four 32-bit draws, spent on four neighbouring
    columns; the counter is (row, column // 4), so the mask does not depend on tiles or strides (see
    kernels/shared/triton/philox.py)."""
    quads_per_row = (d_model + 3) // 4
    quads = tl.program_id(1) * (BLOCK_COLS // 4) + tl.arange(0, BLOCK_COLS // 4)
    counters = rows.to(tl.int64)[:, None] * quads_per_row + quads[None, :]
    zero = tl.zeros(counters.shape, dtype=tl.uint32)
    r0, r1, r2, r3 = philox_draws(seed, counters.to(tl.uint32), (counters >> 32).to(tl.uint32), zero)
    draws = tl.reshape(tl.join(tl.join(r0, r2), tl.join(r1, r3)), [BLOCK_ROWS, BLOCK_COLS])  # column 4q + j: rj
    return draws >= keep_threshold


@triton.jit
def _to_bfloat16_rounding_to_nearest_even(values):
    """float32 -> bfloat16 with integer ops. Triton 3.6's interpreter truncates in .to(tl.bfloat16)
    where GPUs round to nearest even; the kernel uses this under the interpreter only, so that the
    interpreter's results are the GPU's. NaN stays NaN."""
    bits = values.to(tl.uint32, bitcast=True)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).to(tl.uint16).to(tl.bfloat16, bitcast=True)
    return tl.where(values == values, rounded, values.to(tl.bfloat16))


@triton.heuristics({"EVEN_COLS": lambda args: args["d_model"] % args["BLOCK_COLS"] == 0})
@triton.jit(do_not_specialize=["position_offset", "seed", "keep_threshold"])
def _positional_encoding_kernel(
    src_ptr, out_ptr, ids_ptr, position_ids_ptr,
    n_rows, seq_len, d_model, vocab_size,
    stride_src_0, stride_src_1, stride_src_d,  # (B, N, d) source: B and N strides; gathered (V, d): row stride, unused
    stride_ids_b, stride_ids_n,
    stride_pos_b, stride_pos_n,
    stride_out_b, stride_out_n, stride_out_d,
    position_offset, src_scale, seed, keep_threshold, keep_scale,
    FREQ_LOG2_STEP: tl.constexpr,
    GATHER: tl.constexpr, HAS_POSITION_IDS: tl.constexpr, ADD_ENCODING: tl.constexpr, DROPOUT: tl.constexpr,
    ROUND_BF16_BY_HAND: tl.constexpr,
    BLOCK_ROWS: tl.constexpr, BLOCK_COLS: tl.constexpr, EVEN_COLS: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)  # row = b * N + n
    cols = tl.program_id(1) * BLOCK_COLS + tl.arange(0, BLOCK_COLS)
    row_ok = rows < n_rows
    batch = (rows // seq_len).to(tl.int64)
    n = rows % seq_len
    if EVEN_COLS:
        tile_ok = row_ok[:, None]
    else:
        tile_ok = row_ok[:, None] & (cols[None, :] < d_model)

    if GATHER:
        tokens = tl.load(ids_ptr + batch * stride_ids_b + n.to(tl.int64) * stride_ids_n, mask=row_ok, other=0)
        token_ok = (tokens >= 0) & (tokens < vocab_size)
        src_rows = tokens.to(tl.int64) * stride_src_0
        # An out-of-range id reads nothing and yields NaN: loud, and no out-of-bounds access.
        values = tl.load(src_ptr + src_rows[:, None] + cols[None, :] * stride_src_d,
                         mask=tile_ok & token_ok[:, None], other=float("nan"))
    else:
        src_rows = batch * stride_src_0 + n.to(tl.int64) * stride_src_1
        values = tl.load(src_ptr + src_rows[:, None] + cols[None, :] * stride_src_d, mask=tile_ok, other=0.0)
    values = values.to(tl.float32) * src_scale

    if ADD_ENCODING:
        if HAS_POSITION_IDS:
            positions = tl.load(position_ids_ptr + batch * stride_pos_b + n.to(tl.int64) * stride_pos_n,
                                mask=row_ok, other=0)
        else:
            positions = position_offset + n
        values += _sinusoid(positions, tl.program_id(1) * BLOCK_COLS,
                            FREQ_LOG2_STEP=FREQ_LOG2_STEP, BLOCK_ROWS=BLOCK_ROWS, BLOCK_COLS=BLOCK_COLS)
    if DROPOUT:
        keep = _keep_mask(seed, rows, cols, d_model, keep_threshold, BLOCK_ROWS=BLOCK_ROWS, BLOCK_COLS=BLOCK_COLS)
        values = tl.where(keep, values * keep_scale, 0.0)

    out_rows = batch * stride_out_b + n.to(tl.int64) * stride_out_n
    out_ptrs = out_ptr + out_rows[:, None] + cols[None, :] * stride_out_d
    if ROUND_BF16_BY_HAND:
        tl.store(out_ptrs, _to_bfloat16_rounding_to_nearest_even(values), mask=tile_ok)
    else:
        tl.store(out_ptrs, values.to(out_ptr.dtype.element_ty), mask=tile_ok)


@dataclass(frozen=True)
class _Tile:
    rows: int
    cols: int
    num_warps: int


# Interpreter tile: small and unequal, so the tests cross row and column tile edges.
_INTERPRETER_TILE = _Tile(rows=4, cols=16, num_warps=1)
# GPU: about 4096 elements a program (32 a thread at 4 warps, four 16-byte vectors for 16-bit
# dtypes), at most 1024 columns wide so wide models still split into several column blocks.
_ELEMENTS_PER_PROGRAM = 4096
_MAX_BLOCK_COLS = 1024


def _tile(n_rows: int, d_model: int) -> _Tile:
    if INTERPRETING:
        return _INTERPRETER_TILE
    cols = max(16, min(triton.next_power_of_2(d_model), _MAX_BLOCK_COLS))
    rows = max(1, min(triton.next_power_of_2(n_rows), _ELEMENTS_PER_PROGRAM // cols))
    return _Tile(rows, cols, num_warps=max(1, min(8, rows * cols // 1024)))


def _keep_threshold(dropout: Dropout) -> int:
    """Keep an element when its uniform 32-bit draw is >= this (probability 1 - p)."""
    return min(round(dropout.p * 2**32), 2**32 - 1)


def _frequency_log2_step(d_model: int) -> float:
    """log2 of the ratio between neighbouring pairs' frequencies: 10000^(-2/d) = exp2(2 * this)."""
    return -math.log2(10000.0) / d_model


def launch_positional_encoding(
    src: torch.Tensor,
    out: torch.Tensor,
    positions: Positions,
    scale: float,
    dropout: Dropout = Dropout(),
    add_encoding: bool = True,
    token_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """out (B, N, d) = dropout(src * scale + pe) on validated inputs, any strides; returns `out`.

    `src` is (B, N, d), or with `token_ids` (B, N) a (vocab, d) table whose rows the ids pick.
    `out` may be `src` itself (in place: each element is read and written by the same program).
    """
    batch, seq_len, d_model = out.shape
    n_rows = batch * seq_len
    if n_rows == 0 or d_model == 0:
        return out
    if n_rows >= 2**31:
        raise ValueError(f"batch * seq_len = {n_rows} rows exceeds the kernel's int32 row index")
    gather = token_ids is not None
    ids = token_ids if gather else src
    position_ids = positions.ids if positions.ids is not None else src
    src_strides = (src.stride(0), 0, src.stride(1)) if gather else src.stride()
    tile = _tile(n_rows, d_model)
    grid = (triton.cdiv(n_rows, tile.rows), triton.cdiv(d_model, tile.cols))
    _positional_encoding_kernel[grid](
        src, out, ids, position_ids,
        n_rows, seq_len, d_model, src.size(0) if gather else 0,
        *src_strides,
        *(token_ids.stride() if gather else (0, 0)),
        *(positions.ids.stride() if positions.ids is not None else (0, 0)),
        *out.stride(),
        positions.offset, float(scale), dropout.seed, _keep_threshold(dropout), dropout.keep_scale,
        FREQ_LOG2_STEP=_frequency_log2_step(d_model),
        GATHER=gather, HAS_POSITION_IDS=positions.ids is not None, ADD_ENCODING=add_encoding,
        DROPOUT=dropout.active, ROUND_BF16_BY_HAND=INTERPRETING and out.dtype == torch.bfloat16,
        BLOCK_ROWS=tile.rows, BLOCK_COLS=tile.cols, num_warps=tile.num_warps,
    )
    return out
