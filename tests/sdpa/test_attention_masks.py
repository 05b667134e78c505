"""Masks: bool (True = attend) and additive, every broadcast shape, fully masked rows."""
import pytest
import torch

import kernels
from kernels.sdpa.triton.common import MaskArgs
from kernels.testing import assert_attention_close
from test_attention_forward import make_qkv, run_triton

B, H, NQ, NK, D = 2, 3, 21, 37, 32

# Shapes that broadcast to (B, H, Nq, Nk); the kernel reads them with stride 0 on size-1 dims.
MASK_SHAPES = {
    "key_padding": (B, 1, 1, NK),
    "per_query_row": (B, 1, NQ, 1),
    "shared_2d": (NQ, NK),
    "keys_only_1d": (NK,),
    "per_head": (1, H, 1, NK),
    "full": (B, H, NQ, NK),
}


def random_mask(shape, kind, device, keep_rate=0.7):
    keep = torch.rand(shape, device=device) < keep_rate
    if kind == "bool":
        return keep
    bias = torch.randn(shape, device=device)
    return bias.masked_fill(~keep, float("-inf"))


@pytest.mark.parametrize("kind", ["bool", "additive"])
@pytest.mark.parametrize("shape_name", list(MASK_SHAPES))
def test_broadcast_masks(shape_name, kind, device):
    q, k, v = make_qkv(B, H, H, NQ, NK, D, torch.float16, device)
    mask = random_mask(MASK_SHAPES[shape_name], kind, device)
    if kind == "bool":
        # keep one key per row so partially masked rows are the point of this test
        mask = mask | (torch.arange(NK, device=device) == 0)
    assert_attention_close(run_triton(q, k, v, attn_mask=mask), q, k, v, attn_mask=mask)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_additive_mask_in_low_precision_with_gqa(dtype, device):
    q, k, v = make_qkv(B, 4, 2, NQ, NK, 48, dtype, device)
    mask = torch.randn(B, 4, NQ, NK, device=device).to(dtype)
    out = run_triton(q, k, v, attn_mask=mask, enable_gqa=True)
    assert_attention_close(out, q, k, v, attn_mask=mask, enable_gqa=True)


@pytest.mark.parametrize("kind", ["bool", "additive"])
def test_fully_masked_rows_are_zero_not_nan(kind, device):
    q, k, v = make_qkv(B, H, H, NQ, NK, D, torch.float32, device)
    mask = random_mask((B, 1, NQ, NK), kind, device)
    masked_out = float("-inf") if kind == "additive" else False
    mask[0, 0, 3] = masked_out
    mask[1, 0, NQ - 1] = masked_out
    out = run_triton(q, k, v, attn_mask=mask)
    assert (out[0, :, 3] == 0).all() and (out[1, :, NQ - 1] == 0).all()
    assert_attention_close(out, q, k, v, attn_mask=mask)


def test_key_padding_of_a_whole_sequence(device):
    """Left-over padding rows: a batch element whose keys are all padding gives zeros."""
    q, k, v = make_qkv(B, H, H, NQ, NK, D, torch.float16, device)
    lengths = torch.tensor([NK - 9, 0], device=device)
    mask = (torch.arange(NK, device=device) < lengths[:, None])[:, None, None, :]  # (B, 1, 1, Nk)
    out = run_triton(q, k, v, attn_mask=mask)
    assert (out[1] == 0).all()
    assert_attention_close(out, q, k, v, attn_mask=mask)


def test_finfo_min_is_a_weight_not_a_mask(device):
    """Hugging Face masks use finfo.min: a row of it must average the values, as torch does."""
    q, k, v = make_qkv(1, 2, 2, 9, 19, 32, torch.float32, device)
    mask = torch.zeros(1, 1, 9, 19, device=device)
    mask[..., 10:] = torch.finfo(torch.float32).min
    mask[..., 4, :] = torch.finfo(torch.float32).min
    out = run_triton(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out[:, :, 4], v.mean(dim=2), atol=1e-5, rtol=1e-5)
    assert_attention_close(out, q, k, v, attn_mask=mask)


def test_non_contiguous_mask(device):
    q, k, v = make_qkv(B, H, H, NQ, NK, D, torch.float32, device)
    mask = (torch.rand(B, NK, NQ, device=device) < 0.8).transpose(1, 2)[:, None]  # (B, 1, Nq, Nk), strided
    mask[..., 0] = True
    assert_attention_close(run_triton(q, k, v, attn_mask=mask), q, k, v, attn_mask=mask)


@pytest.mark.parametrize("n_q, n_k", [(37, 37), (13, 50), (50, 13), (1, 33)])
def test_causal_is_top_left_aligned(n_q, n_k, device):
    """Query i attends keys 0..i whatever Nq and Nk, which is what torch SDPA defines."""
    q, k, v = make_qkv(1, 2, 2, n_q, n_k, 32, torch.float32, device)
    out = run_triton(q, k, v, is_causal=True)
    top_left = torch.ones(n_q, n_k, dtype=torch.bool, device=device).tril()
    assert_attention_close(out, q, k, v, attn_mask=top_left)
    torch.testing.assert_close(out, torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True),
                               atol=1e-5, rtol=1e-5)


def test_padding_on_both_sides_skips_tiles_yet_matches(device):
    """Left and right padding spanning whole key tiles: the kernel visits only the attended span.

    K, V and the mask are views into larger buffers whose tails are poisoned (NaN keys and values
    marked as attended), so a tile read past the sequence end shows up as NaN.
    """
    n_k, tail = 96, 16
    q, k, v = make_qkv(3, 2, 2, 29, n_k + tail, 32, torch.float16, device)
    k[:, :, n_k:], v[:, :, n_k:] = float("nan"), float("nan")
    k, v = k[:, :, :n_k], v[:, :, :n_k]
    positions = torch.arange(n_k + tail, device=device)
    # spans whose last key opens a tile, and one that ends at the sequence end from an unaligned start
    starts, ends = torch.tensor([0, 35, 50], device=device), torch.tensor([33, 96, 65], device=device)
    keep = (positions >= starts[:, None]) & (positions < ends[:, None]) | (positions >= n_k)
    mask = keep[:, None, None, :n_k]
    assert_attention_close(run_triton(q, k, v, attn_mask=mask), q, k, v, attn_mask=mask)


def test_attended_key_range_only_for_key_padding_masks(device):
    from kernels.sdpa.triton.common import attended_key_range as _attended_key_range

    keep = torch.zeros(3, 1, 1, 50, dtype=torch.bool, device=device)
    keep[0, ..., 4:9] = True
    keep[1, ..., 0] = True
    ranges = _attended_key_range(keep.expand(3, 4, 7, 50))
    assert ranges.tolist() == [[4, 9], [0, 1], [50, 0]]  # the last row attends nothing: empty range
    assert _attended_key_range(torch.ones(3, 4, 7, 50, dtype=torch.bool, device=device)) is None
    assert _attended_key_range(torch.zeros(3, 1, 1, 50, device=device).expand(3, 4, 7, 50)) is None
    # One query (a decode step) or one head: that dim is not expanded and keeps its stride, yet it broadcasts.
    assert _attended_key_range(keep.expand(3, 4, 1, 50)).tolist() == [[4, 9], [0, 1], [50, 0]]
    assert _attended_key_range(keep.expand(3, 1, 7, 50)).tolist() == [[4, 9], [0, 1], [50, 0]]
    per_head = torch.ones(3, 4, 1, 50, dtype=torch.bool, device=device)
    assert _attended_key_range(per_head) is None  # four heads with their own masks


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: a CUDA graph")
def test_a_captured_decode_step_reads_the_mask_it_is_replayed_with():
    """The key range remembered from a first call is not reused inside a CUDA graph capture: the
    graph computes it, so a replay after an in-place rewrite of the mask sees the new padding."""
    q, k, v = (torch.randn(2, 4, n, 64, device="cuda", dtype=torch.float16) for n in (1, 256, 256))
    keep = torch.ones(2, 1, 1, 256, dtype=torch.bool, device="cuda")
    keep[1, ..., 100:] = False
    kernels.attention(q, k, v, attn_mask=keep)  # autotunes, and remembers the range
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = kernels.attention(q, k, v, attn_mask=keep)
    keep[1, ..., 100:200] = True  # the next step's padding, written in place
    graph.replay()
    torch.testing.assert_close(out, kernels.attention(q, k, v, attn_mask=keep), atol=2e-3, rtol=2e-3)


def test_the_key_range_is_remembered_until_the_mask_changes(device):
    """Every layer of a model gets the same mask: its range is computed once, recomputed after an
    in-place write or for another view of the same tensor, and never remembered on an inference tensor."""
    from kernels.sdpa.triton.common import attended_key_range

    keep = torch.zeros(2, 1, 1, 30, dtype=torch.bool, device=device)
    keep[0, ..., 3:7] = True
    keep[1, ..., 10:] = True
    first = attended_key_range(keep.expand(2, 4, 5, 30))
    assert attended_key_range(keep.expand(2, 8, 1, 30)) is first  # another layer's view: the same range
    keep[1, ..., 20:] = False  # an in-place write bumps the version
    assert attended_key_range(keep.expand(2, 4, 5, 30)).tolist() == [[3, 7], [10, 20]]
    assert attended_key_range(keep[1:].expand(1, 4, 5, 30)).tolist() == [[10, 20]]  # another view of it
    with torch.inference_mode():
        frozen = keep.clone()
    ranges = [attended_key_range(frozen.expand(2, 4, 5, 30)) for _ in range(2)]
    assert ranges[0] is not ranges[1] and ranges[0].tolist() == ranges[1].tolist() == [[3, 7], [10, 20]]


@pytest.mark.parametrize("shape, rows_span_heads, shared", [
    ((2, 1, 1, 9), False, True),  # key padding: one row for every head and query
    ((2, 1, 1, 9), True, True),
    ((2, 4, 1, 9), False, True),  # a row per head: shared within the forward's one-head tiles
    ((2, 4, 1, 9), True, False),  # ... but not by the decode tile's rows, which span heads
    ((2, 1, 7, 9), False, False),  # a row per query
    ((7, 9), False, False),
])
def test_a_mask_row_every_tile_row_shares_is_read_once_per_tile(shape, rows_span_heads, shared):
    """MASK_SHARED_ROW (load one BLOCK_N vector, not a BLOCK_M x BLOCK_N tile) exactly when every row of
    the kernel's tile reads the same mask row; the mask tests above run both paths."""
    q = torch.randn(2, 4, 7, 16)
    mask = torch.rand(shape) > 0.5
    assert MaskArgs(mask.expand(2, 4, 7, 9), placeholder=q).shared_row(rows_span_heads) == shared
