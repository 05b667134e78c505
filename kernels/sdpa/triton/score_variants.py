"""The attention variants inside the Triton kernels (kernels/sdpa/variants.py says what each means):
constexpr flags of the one forward / backward / split-K decode family, never copied kernels.

- SOFTCAP: the scaled scores become c * tanh(scores / c) before ALiBi and any mask. The kernels keep
  scores in log2 units (x = s * log2(e)), where the cap reads C * tanh(x / C) with C = c * log2(e),
  so the launchers pass `softcap_log2` = C. The backward multiplies dS by 1 - tanh^2.
- ALIBI: -slope * |i - j| is added to the (capped) scores; the slopes arrive in log2 units per row
  (row_slopes, slope * log2(e)), so a split-K tile whose rows come from several heads works too.
- USE_SINKS: each row's softmax denominator gains exp(sink): the running row statistics start at
  (m, l) = (sink, 1) instead of (-inf, 0), as if the sink were one more key with a zero value. A
  row with no key gets zeros and lse = sink. The gradient of the sinks,
  dsink_h = -sum over rows of exp(sink_h - lse) * delta (delta = rowsum(dO * O)), needs only the
  forward's lse and the backward's delta: torch reduces it (`sink_gradient`), deterministically.
- WINDOW_LEFT / WINDOW_RIGHT: query i attends key j only if i - left <= j (and j <= i + right).
  `window_band` shrinks the key tiles a query block visits (and the query tiles a key block visits,
  in the dK/dV kernel) to the band, so tiles outside it are never read; the per-element compare
  runs only on the tiles that straddle a band edge (`tile_straddles_window`).

`KernelVariants` turns the checked options into the kernels' arguments and flags.
"""
import torch
import triton
import triton.language as tl

LOG2E = tl.constexpr(1.4426950408889634)  # scores are in log2 units: s * log2(e) (common.py re-exports it)


@triton.jit
def soft_capped(qk, softcap_log2):
    """C * tanh(qk / C) with C = softcap_log2, through exp2 (tanh(y) = 1 - 2 / (exp(2y) + 1)): an
    absolute error of a few roundings of C (what the softmax sees), +-C at the extremes, no NaN."""
    two_y_log2 = qk * (2.0 * LOG2E / softcap_log2)
    return softcap_log2 * (1.0 - 2.0 / (tl.math.exp2(two_y_log2) + 1.0))


@triton.jit
def varied_scores(qk, query_pos, key_pos, row_slopes, softcap_log2, SOFTCAP: tl.constexpr, ALIBI: tl.constexpr):
    """The soft cap, then the ALiBi bias, on (BLOCK_M, BLOCK_N) log2-unit scores; `query_pos` and
    `key_pos` are the tile's query and key positions, `row_slopes` (BLOCK_M) each row's slope in log2
    units. Before any mask: a cap of -inf would turn a masked score into -C."""
    if SOFTCAP:
        qk = soft_capped(qk, softcap_log2)
    if ALIBI:
        distance = tl.abs(query_pos[:, None] - key_pos[None, :]).to(qk.dtype)
        qk = qk - row_slopes[:, None].to(qk.dtype) * distance
    return qk


@triton.jit
def soft_cap_slope(qk, softcap_log2):
    """d(capped)/d(score) = 1 - tanh^2 of the capped scores `qk` (= C * tanh): what dS is multiplied by."""
    tanh = qk / softcap_log2
    return 1.0 - tanh * tanh


@triton.jit
def window_band(first_row, last_row, before, after, n_cols, BLOCK: tl.constexpr,
                HAS_BEFORE: tl.constexpr, HAS_AFTER: tl.constexpr):
    """[start, end) of the columns that rows [first_row, last_row] reach in a band where row r sees
    columns r - before .. r + after (a side without HAS_* is unbounded); start on the BLOCK grid.
    Queries over keys: (before, after) = (left, right); keys over queries: (right, left)."""
    start = 0
    end = n_cols
    if HAS_BEFORE:
        start = tl.maximum(first_row - before, 0) // BLOCK * BLOCK
    if HAS_AFTER:
        end = tl.minimum(last_row + after + 1, n_cols)
    return start, end


@triton.jit
def clip_to_window(start, split, end, first_row, last_row, before, after, n_cols, BLOCK: tl.constexpr,
                   HAS_BEFORE: tl.constexpr, HAS_AFTER: tl.constexpr):
    """A tile span [start, end) walked as [start, split) then [split, end) (e.g. before and on the causal
    diagonal), cut to the window band of rows [first_row, last_row] (see window_band): both parts stay
    on the BLOCK grid and come out empty where they miss the band."""
    band_start, band_end = window_band(first_row, last_row, before, after, n_cols, BLOCK=BLOCK,
                                       HAS_BEFORE=HAS_BEFORE, HAS_AFTER=HAS_AFTER)
    split = tl.minimum(tl.maximum(split, band_start), band_end)
    return tl.maximum(start, band_start), split, tl.minimum(end, band_end)


@triton.jit
def tile_straddles_window(first_query, last_query, first_key, last_key, window_left, window_right,
                          WINDOW_LEFT: tl.constexpr, WINDOW_RIGHT: tl.constexpr):
    """Whether some (query, key) pair of a tile lies outside the band: only then the per-element compare."""
    straddles = False
    if WINDOW_LEFT:
        straddles = straddles | (last_query - window_left > first_key)
    if WINDOW_RIGHT:
        straddles = straddles | (last_key > first_query + window_right)
    return straddles


@triton.jit
def windowed_scores(qk, query_pos, key_pos, window_left, window_right,
                    WINDOW_LEFT: tl.constexpr, WINDOW_RIGHT: tl.constexpr):
    """-inf outside the band i - left <= j <= i + right."""
    if WINDOW_LEFT:
        qk = tl.where(key_pos[None, :] >= query_pos[:, None] - window_left, qk, float("-inf"))
    if WINDOW_RIGHT:
        qk = tl.where(key_pos[None, :] <= query_pos[:, None] + window_right, qk, float("-inf"))
    return qk


@triton.jit
def per_row_values(ptr, index, valid, scale):
    """ptr[index] * scale, in ptr's dtype (the accumulator's: see KernelVariants), 0 where not `valid`
    (padding rows of a split-K tile)."""
    return tl.load(ptr + index, mask=valid, other=0.0) * scale


@triton.jit
def start_row_stats(sinks_ptr, heads, with_sink, BLOCK_M: tl.constexpr, ACC_DTYPE: tl.constexpr,
                    USE_SINKS: tl.constexpr):
    """The running (row max, row sum) before any key: (-inf, 0), or with sinks (sink, 1) in log2 units
    for the rows where `with_sink` (a split-K program counts the sink in its first split only)."""
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=ACC_DTYPE)
    l_i = tl.zeros([BLOCK_M], dtype=ACC_DTYPE)
    if USE_SINKS:
        sink = per_row_values(sinks_ptr, heads, with_sink, LOG2E).to(ACC_DTYPE)
        m_i = tl.where(with_sink, sink, m_i)
        l_i = tl.where(with_sink, 1.0, l_i)
    return m_i, l_i


class KernelVariants:
    """One call's `AttentionVariants` (or None) as the kernels take them: `args` (slopes, slopes'
    batch stride, sinks, softcap_log2, window left, window right; placeholders where unused) and
    `flags` (constexpr keyword arguments). Slopes and sinks are handed over in the kernel's
    `accumulator` dtype (common.accumulator_dtype: float64 inputs stay exact)."""

    def __init__(self, variants, placeholder: torch.Tensor, accumulator: torch.dtype):
        if variants is None:  # the common call, in fewer steps (host time)
            self.sinks, self.flags = None, _NO_VARIANT_FLAGS
            self.args = (placeholder, 0, placeholder, 1.0, 0, 0)
            return
        window, softcap, slopes, sinks = variants.window, variants.softcap, variants.alibi_slopes, variants.sinks
        left, right = window if window is not None else (None, None)
        slopes_arg, slopes_batch_stride = placeholder, 0
        if slopes is not None:
            slopes_arg = slopes.detach().to(accumulator).contiguous()
            slopes_batch_stride = slopes_arg.size(1) if slopes_arg.dim() == 2 else 0
        sinks_arg = placeholder if sinks is None else sinks.detach().to(accumulator).contiguous()
        self.sinks = sinks
        self.args = (slopes_arg, slopes_batch_stride, sinks_arg,
                     1.0 if softcap is None else softcap * LOG2E.value,
                     _kernel_side(left), _kernel_side(right))
        self.flags = dict(SOFTCAP=softcap is not None, ALIBI=slopes is not None, USE_SINKS=sinks is not None,
                          WINDOW_LEFT=left is not None, WINDOW_RIGHT=right is not None)


# The flags of a call without variants, shared by every such call: read, never written.
_NO_VARIANT_FLAGS = dict(SOFTCAP=False, ALIBI=False, USE_SINKS=False, WINDOW_LEFT=False, WINDOW_RIGHT=False)

# A window side this wide reaches every key of any sequence a kernel can take; capping it keeps the
# kernels' band arithmetic (row + side + 1) inside int32.
_WIDEST_SIDE = 2**30


def _kernel_side(side: int | None) -> int:
    return 0 if side is None else min(side, _WIDEST_SIDE)


VARIANT_FLAGS = ["SOFTCAP", "ALIBI", "USE_SINKS", "WINDOW_LEFT", "WINDOW_RIGHT"]  # in the autotuners' cache keys


def lse_without_keys(lse: torch.Tensor, variants) -> torch.Tensor:
    """The lse (B, Hq, Nq) of rows that attend no key: -inf, or each head's sink with sinks."""
    if variants is None or variants.sinks is None:
        return torch.full_like(lse, float("-inf"))
    return variants.sinks.detach().to(lse.dtype)[None, :, None].expand_as(lse)


def sink_gradient(sinks: torch.Tensor, lse: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """d loss / d sinks (Hq,) from the forward's lse and the backward's delta, both (B, Hq, Nq):
    the sink's weight in row r is p = exp(sink - lse_r), its value is zero, so its score gradient is
    p * (0 - delta_r); summed over the rows of each head by torch (deterministic)."""
    weight = torch.exp(sinks.to(lse.dtype)[None, :, None] - lse)
    return -(weight * delta).sum(dim=(0, 2)).to(sinks.dtype)
