"""Float32 past head dim 128: the kernels read the score dots' operands a head-dim chunk at a time
(common.head_dim_chunk, head_dim_chunked_dot). Forward, backward, decode and dropout against the
float64 reference on shapes that cross tile edges, with the head dim a power of two (256), or not
(160, 200: the last chunk is part padding), Dv != D, GQA, causal and masks."""
import pytest
import torch

import kernels
import reference
from kernels.sdpa.triton.common import head_dim_chunk, padded_head_dim
from kernels.testing import assert_attention_close, assert_parity
from test_attention_backward import assert_gradients_match, gradient_tolerance, reference_gradients, triton_gradients
from test_attention_decode import assert_matches_reference_and_normal_kernel
from test_attention_forward import make_qkv, run_triton
from test_forward_descriptors import descriptor_path  # noqa: F401 (a fixture)

# (batch, query heads, key/value heads, Nq, Nk, D, Dv)
CHUNKED_SHAPES = [
    (1, 2, 2, 37, 45, 256, 256),
    (1, 4, 2, 19, 33, 200, 200),
    (2, 1, 1, 17, 23, 160, 96),
]


def chunked_inputs(shape, device):
    """float32 q, k, v of `shape`, after checking that the kernels take the chunked path for it."""
    batch, heads_q, heads_kv, n_q, n_k, head_dim, head_dim_v = shape
    chunk = head_dim_chunk(torch.float32, padded_head_dim(head_dim), padded_head_dim(head_dim_v))
    assert 0 < chunk < padded_head_dim(head_dim), f"float32 d{head_dim} is no longer read in head-dim chunks"
    return make_qkv(batch, heads_q, heads_kv, n_q, n_k, head_dim, torch.float32, device, head_dim_v=head_dim_v)


def variant_kwargs(variant, q, k):
    """kernels.attention keywords for a variant: plain, causal, or a bool or additive (B, 1, Nq, Nk)
    mask whose first query row is fully masked."""
    kwargs = dict(enable_gqa=q.size(1) != k.size(1), is_causal=variant == "causal")
    if variant in ("bool", "additive"):
        keep = torch.rand(q.size(0), 1, q.size(2), k.size(2), device=q.device) < 0.7
        keep[..., 0, :] = False
        mask = torch.randn(keep.shape, device=q.device).masked_fill(~keep, float("-inf"))
        kwargs["attn_mask"] = keep if variant == "bool" else mask
    return kwargs


def test_only_float32_past_head_dim_128_is_chunked():
    for block_d, block_dv in ((256, 256), (256, 64), (64, 256)):
        chunk = head_dim_chunk(torch.float32, block_d, block_dv)
        assert 16 <= chunk < 256 and 256 % chunk == 0, (block_d, block_dv, chunk)
    assert head_dim_chunk(torch.float32, 128, 128) == 0
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        assert head_dim_chunk(dtype, 256, 256) == 0


@pytest.mark.parametrize("variant", ["plain", "causal", "bool", "additive"])
@pytest.mark.parametrize("shape", CHUNKED_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_forward(shape, variant, device):
    q, k, v = chunked_inputs(shape, device)
    kwargs = variant_kwargs(variant, q, k)
    assert_attention_close(run_triton(q, k, v, **kwargs), q, k, v, **kwargs)


@pytest.mark.parametrize("variant", ["causal", "bool"])
@pytest.mark.parametrize("shape", CHUNKED_SHAPES[1:], ids=lambda s: "x".join(map(str, s)))
def test_forward_through_descriptors(shape, variant, device, descriptor_path):  # noqa: F811
    """The TMA path: q and k read in (rows, chunk) blocks of their descriptors."""
    q, k, v = chunked_inputs(shape, device)
    kwargs = variant_kwargs(variant, q, k)
    assert_attention_close(run_triton(q, k, v, **kwargs), q, k, v, **kwargs)
    descriptor_path.assert_descriptors_ran()


@pytest.mark.parametrize("variant", ["causal", "bool", "additive"])
@pytest.mark.parametrize("shape", CHUNKED_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_backward(shape, variant, device):
    q, k, v = chunked_inputs(shape, device)
    kwargs = variant_kwargs(variant, q, k)
    dout = torch.randn(*q.shape[:3], v.size(3), device=device)
    assert_gradients_match(q, k, v, dout, **kwargs)


@pytest.mark.parametrize("shape", [(1, 8, 2, 1, 70, 256, 256), (2, 6, 2, 3, 41, 200, 160)],
                         ids=lambda s: "x".join(map(str, s)))
def test_decode(shape, device):
    q, k, v = chunked_inputs(shape, device)
    mask = torch.rand(q.size(0), 1, q.size(2), k.size(2), device=device) < 0.8
    assert_matches_reference_and_normal_kernel(q, k, v, mask, num_splits=3)


def test_dropout_forward_and_backward(device):
    """The kernels' own dropout mask replayed through the reference, judged by the pass rule."""
    q, k, v = chunked_inputs((1, 2, 1, 21, 37, 200, 200), device)
    fused = dict(enable_gqa=True, is_causal=True, dropout_p=0.3)
    dout = torch.randn_like(q)
    torch.manual_seed(5)
    replay = dict(fused, dropout_mask=kernels.attention_dropout_mask(q, k, 0.3))
    torch.manual_seed(5)
    out = run_triton(q, k, v, **fused)
    exact = reference.scaled_dot_product_attention(q.double(), k.double(), v.double(), **replay)
    assert_parity(out, exact, reference.scaled_dot_product_attention(q, k, v, **replay))

    torch.manual_seed(5)
    ours = triton_gradients(q, k, v, dout, **fused)
    exact = reference_gradients(q.double(), k.double(), v.double(), dout.double(), **replay)
    plain = reference_gradients(q, k, v, dout, **replay)
    for name, got, want, baseline in zip(("dq", "dk", "dv"), ours, exact, plain):
        try:
            assert_parity(got, want, baseline, tolerance=gradient_tolerance(q.dtype, want))
        except AssertionError as failure:
            raise AssertionError(f"{name}: {failure}") from None
