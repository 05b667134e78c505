"""Split-K decode attention (kernels/sdpa/triton/decode.py): against the float64 reference and
against the normal Triton kernel on the same inputs, the combine's corner cases (splits with no
key, fully masked rows), KV-cache views, and the dispatch through `kernels.attention`."""
import math

import pytest
import torch

import reference
from kernels.sdpa import custom_ops as attention_ops
from kernels.sdpa.triton import decode
from kernels.sdpa.triton.common import accumulator_dtype
from kernels.sdpa.triton.decode import choose_num_splits, force_num_splits, launch_decode
from kernels.sdpa.triton.forward import launch_forward
from kernels.testing import assert_attention_close, assert_parity
from support.devices import requires_cuda
from test_attention_backward import assert_gradients_match
from test_attention_forward import make_qkv, run_triton

SPLITS = [1, 2, 3, 7]

# (batch, query heads, key/value heads, Nq, Nk, D, Dv): one key; lengths that are not multiples of
# the tile (16 in the interpreter); GQA groups of 1, 2, 3 and 4 with odd Nq; Dv != D; a group of
# 3 x 11 = 33 rows spread over two query blocks (32 rows each in the interpreter).
DECODE_SHAPES = [
    (1, 1, 1, 1, 1, 16, 16),
    (2, 2, 2, 1, 17, 24, 24),
    (1, 4, 2, 1, 100, 64, 64),
    (1, 4, 1, 3, 257, 24, 40),
    (1, 6, 2, 11, 40, 32, 32),
]


def poisoned_outputs(q, v):
    """NaN out, laid out (B, Nq, Hq, Dv) like the op's, and NaN lse: an unwritten element shows."""
    batch, heads, n_queries, _ = q.shape
    out = torch.full((batch, n_queries, heads, v.size(3)), float("nan"), dtype=q.dtype, device=q.device)
    lse = torch.full((batch, heads, n_queries), float("nan"), dtype=accumulator_dtype(q.dtype), device=q.device)
    return out.transpose(1, 2), lse


def launch_both(q, k, v, mask, num_splits):
    """(split-K out, lse) and (normal-kernel out, lse) on the same inputs, each into poisoned outputs."""
    scale = 1 / math.sqrt(q.size(-1))
    if mask is not None:
        mask = mask.expand(q.size(0), q.size(1), q.size(2), k.size(2))
    split = launch_decode(q, k, v, mask, scale, num_splits, *poisoned_outputs(q, v))
    normal = launch_forward(q, k, v, mask, False, scale, *poisoned_outputs(q, v))
    return split, normal


def exact_lse(q, k, mask=None):
    """float64 log-sum-exp of the scaled scores (with GQA and the mask), -inf for fully masked rows."""
    k = k.double().repeat_interleave(q.size(1) // k.size(1), dim=1)
    scores = q.double() @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask.double()
    return scores.logsumexp(-1)


def assert_matches_reference_and_normal_kernel(q, k, v, mask=None, num_splits=3):
    gqa = q.size(1) != k.size(1)
    (out, lse), (normal_out, normal_lse) = launch_both(q, k, v, mask, num_splits)
    assert_attention_close(out, q, k, v, attn_mask=mask, enable_gqa=gqa)
    exact_mask = mask if mask is None or mask.dtype == torch.bool else mask.double()
    exact = reference.scaled_dot_product_attention(q.double(), k.double(), v.double(), attn_mask=exact_mask,
                                                   enable_gqa=gqa)
    assert_parity(out, exact, normal_out)  # at most 2x the normal kernel's error (+ the dtype's floor)
    torch.testing.assert_close(lse, normal_lse, atol=2e-5, rtol=1e-5)
    expected_lse = exact_lse(q, k, mask)
    ordinary = expected_lse > -1e30  # the kernels clamp finfo.min masks (see masked_scores): not those rows
    assert ordinary.any()
    torch.testing.assert_close(lse.double()[ordinary], expected_lse[ordinary], atol=2e-5, rtol=1e-5)
    assert (lse[expected_lse == float("-inf")] == float("-inf")).all()
    return out, lse


@pytest.mark.parametrize("num_splits", SPLITS)
@pytest.mark.parametrize("shape", DECODE_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_reference_and_normal_kernel(shape, num_splits, device):
    batch, heads_q, heads_kv, n_q, n_k, head_dim, head_dim_v = shape
    q, k, v = make_qkv(batch, heads_q, heads_kv, n_q, n_k, head_dim, torch.float32, device, head_dim_v=head_dim_v)
    assert_matches_reference_and_normal_kernel(q, k, v, num_splits=num_splits)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape", DECODE_SHAPES[2:4], ids=lambda s: "x".join(map(str, s)))
def test_low_precision(shape, dtype, device):
    batch, heads_q, heads_kv, n_q, n_k, head_dim, head_dim_v = shape
    q, k, v = make_qkv(batch, heads_q, heads_kv, n_q, n_k, head_dim, dtype, device, head_dim_v=head_dim_v)
    assert_matches_reference_and_normal_kernel(q, k, v, num_splits=3)


def test_float64_accumulates_in_float64(device):
    q, k, v = make_qkv(2, 4, 2, 3, 70, 40, torch.float64, device)
    mask = torch.rand(2, 1, 3, 70, device=device) < 0.8
    (out, lse), _ = launch_both(q, k, v, mask, num_splits=5)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-6)
    assert lse.dtype == torch.float64
    torch.testing.assert_close(lse, exact_lse(q, k, mask), atol=1e-6, rtol=1e-6)


def test_key_padding_with_whole_splits_padded(device):
    """Nk = 100 in 7 splits of 16 keys: element 0 keeps 30 keys (splits 2-6 padded, skipped by the
    key span), element 1 keeps 53 (a split boundary inside a tile's reach), element 2 none."""
    q, k, v = make_qkv(3, 4, 2, 1, 100, 32, torch.float16, device)
    lengths = torch.tensor([30, 53, 0], device=device)
    mask = (torch.arange(100, device=device) < lengths[:, None])[:, None, None, :]  # (B, 1, 1, Nk)
    out, lse = assert_matches_reference_and_normal_kernel(q, k, v, mask, num_splits=7)
    assert (out[2] == 0).all() and (lse[2] == float("-inf")).all()


def test_bool_mask_per_head_with_splits_and_rows_fully_masked(device):
    """A (B, Hq, Nq, Nk) bool mask: keys 16-63 masked for every row (splits 1-3 of 16 keys see
    nothing), and one query head's row with no key at all -> zeros and lse -inf."""
    q, k, v = make_qkv(1, 4, 2, 2, 90, 24, torch.float32, device)
    mask = torch.rand(1, 4, 2, 90, device=device) < 0.7
    mask[..., 16:64] = False
    mask[0, 3, 1] = False
    out, lse = assert_matches_reference_and_normal_kernel(q, k, v, mask, num_splits=6)
    assert (out[0, 3, 1] == 0).all() and lse[0, 3, 1] == float("-inf")


def test_additive_mask_with_minus_inf_and_finfo_min(device):
    """-inf over whole splits, a row of finfo.min (a uniform average, as torch gives) and a row of
    -inf (zeros); the mask broadcasts over heads with stride 0."""
    q, k, v = make_qkv(2, 2, 2, 3, 75, 32, torch.float32, device)
    mask = torch.randn(2, 1, 3, 75, device=device)
    mask[..., 20:50] = float("-inf")
    mask[0, 0, 1] = torch.finfo(torch.float32).min
    mask[1, 0, 2] = float("-inf")
    out, lse = assert_matches_reference_and_normal_kernel(q, k, v, mask, num_splits=4)
    torch.testing.assert_close(out[0, :, 1], v[0].mean(dim=1), atol=1e-5, rtol=1e-5)
    assert (out[1, :, 2] == 0).all() and (lse[1, :, 2] == float("-inf")).all()


@pytest.mark.parametrize("layout", ["bhnd", "bnhd"])
def test_reads_a_kv_cache_slice_in_place(layout, device):
    """K/V are the first n positions of a preallocated cache whose tail holds NaN: a read past n shows."""
    batch, heads_q, heads_kv, capacity, n, head_dim = 2, 4, 2, 160, 97, 64
    if layout == "bhnd":
        cache = torch.full((2, batch, heads_kv, capacity, head_dim), float("nan"), device=device)
        cache[..., :n, :] = torch.randn(2, batch, heads_kv, n, head_dim, device=device)
        k, v = cache[0, :, :, :n], cache[1, :, :, :n]
    else:  # (B, N, H, D) cache, as models write it, viewed (B, H, N, D)
        cache = torch.full((2, batch, capacity, heads_kv, head_dim), float("nan"), device=device)
        cache[:, :, :n] = torch.randn(2, batch, n, heads_kv, head_dim, device=device)
        k, v = cache[0, :, :n].transpose(1, 2), cache[1, :, :n].transpose(1, 2)
    assert not k.is_contiguous() and k.data_ptr() == cache[0].data_ptr()
    q = torch.randn(batch, heads_q, 1, head_dim, device=device)
    assert_matches_reference_and_normal_kernel(q, k, v, num_splits=5)


def test_empty_key_sequence_gives_zeros(device):
    q, k, v = make_qkv(1, 2, 2, 1, 0, 16, torch.float32, device)
    out, lse = launch_decode(q, k, v, None, 0.25, 3, *poisoned_outputs(q, v))
    assert (out == 0).all() and (lse == float("-inf")).all()


@pytest.mark.parametrize("bad", [0, -2, decode.MAX_SPLITS + 1, 2.0, True])
def test_num_splits_must_be_an_int_in_range(bad, device):
    q, k, v = make_qkv(1, 1, 1, 1, 4, 16, torch.float32, device)
    with pytest.raises(ValueError, match=r"num_splits must be an int in \[1, 64\]"):
        launch_decode(q, k, v, None, 0.25, bad)
    with pytest.raises(ValueError, match=r"num_splits must be an int in \[1, 64\]"):
        with force_num_splits(bad):
            pass


# --- the dispatch through kernels.attention ---

@pytest.fixture
def launches(monkeypatch):
    """The launches behind kernels.attention, in order: ("decode", num_splits) or ("normal", 1)."""
    seen = []
    launch_decode, launch_normal = attention_ops.launch_decode, attention_ops.launch_forward

    def spy_decode(*args, **kwargs):
        seen.append(("decode", args[5]))
        return launch_decode(*args, **kwargs)

    def spy_normal(*args, **kwargs):
        seen.append(("normal", 1))
        return launch_normal(*args, **kwargs)

    monkeypatch.setattr(attention_ops, "launch_decode", spy_decode)
    monkeypatch.setattr(attention_ops, "launch_forward", spy_normal)
    return seen


@pytest.mark.parametrize("num_splits", SPLITS)
def test_forced_splits_run_through_the_public_function(num_splits, launches, device):
    q, k, v = make_qkv(2, 4, 2, 1, 50, 32, torch.float16, device)
    mask = torch.rand(2, 1, 1, 50, device=device) < 0.8
    with force_num_splits(num_splits):
        out = run_triton(q, k, v, attn_mask=mask, enable_gqa=True)
    assert launches == [("normal", 1) if num_splits == 1 else ("decode", num_splits)]
    assert_attention_close(out, q, k, v, attn_mask=mask, enable_gqa=True)


def test_heuristic_splits_decode_and_keeps_the_normal_kernel_otherwise(launches, monkeypatch, device):
    """With a CUDA-like SM count the heuristic splits Nq = 1 over 600 keys; more queries, causal and
    dropout calls take the normal kernel. Off CUDA (no SM count) nothing is split."""
    q, k, v = make_qkv(1, 2, 2, 1, 600, 16, torch.float32, device)
    many_queries = torch.randn(1, 2, 17, 16, device=device)
    run_triton(many_queries, k, v)
    assert launches == [("normal", 1)]
    if device == "cpu":
        run_triton(q, k, v)
        assert launches[-1] == ("normal", 1)

    monkeypatch.setattr(decode, "multiprocessor_count", lambda device: 132)
    launches.clear()
    out = run_triton(q, k, v)
    run_triton(many_queries, k, v)
    run_triton(q, k, v, is_causal=True)
    run_triton(q, k, v, dropout_p=0.5)
    assert launches == [("decode", 2), ("normal", 1), ("normal", 1), ("normal", 1)]
    assert_attention_close(out, q, k, v)


@requires_cuda
@pytest.mark.parametrize("heads_kv", [32, 8])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_llama_sized_decode_step_splits_by_itself(dtype, heads_kv, launches, device):
    """A decode step at GPU size: 32 query heads over an 8k-key cache with padding; the heuristic
    alone (no forcing) must pick split-K."""
    q, k, v = make_qkv(2, 32, heads_kv, 1, 8192, 128, dtype, device)
    mask = (torch.arange(8192, device=device) < torch.tensor([[8192], [5000]], device=device))[:, None, None, :]
    out = run_triton(q, k, v, attn_mask=mask, enable_gqa=heads_kv != 32)
    assert launches[0][0] == "decode" and launches[0][1] > 1
    assert_attention_close(out, q, k, v, attn_mask=mask, enable_gqa=heads_kv != 32)


def test_backward_after_a_split_forward(launches, device):
    """The backward needs only out and lse: after a split-K forward it still matches float64 autograd."""
    q, k, v = make_qkv(1, 4, 2, 3, 70, 32, torch.float32, device)
    dout = torch.randn(1, 4, 3, 32, device=device)
    mask = torch.rand(1, 1, 3, 70, device=device) < 0.8
    with force_num_splits(4):
        assert_gradients_match(q, k, v, dout, attn_mask=mask, enable_gqa=True)
    assert launches == [("decode", 4)]


# --- the heuristic alone ---

def test_choose_num_splits_fills_the_card_with_long_enough_splits():
    assert choose_num_splits(8, 1, 32768, multiprocessors=132) == 33  # 8 programs -> 2 x 132
    assert choose_num_splits(8, 1, 1024, multiprocessors=132) == 4  # at least 256 keys per split
    assert choose_num_splits(1, 1, 1 << 20, multiprocessors=132) == decode.MAX_SPLITS
    assert choose_num_splits(264, 1, 32768, multiprocessors=132) == 1  # the unsplit grid already fills it
    assert choose_num_splits(8, 1, 300, multiprocessors=132) == 1  # too few keys to split


def test_choose_num_splits_never_splits_many_queries_or_off_cuda():
    assert choose_num_splits(8, decode.MAX_DECODE_QUERIES + 1, 32768, multiprocessors=132) == 1
    assert choose_num_splits(8, decode.MAX_DECODE_QUERIES, 32768, multiprocessors=132) > 1
    assert choose_num_splits(8, 1, 32768, multiprocessors=None) == 1
