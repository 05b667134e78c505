"""Dropout inside the fused kernels: keep rate, independence, reproducibility, and an exact replay
of the kernel's own mask through the reference, forward and backward."""
import math

import pytest
import torch

import kernels
import reference
from test_attention_backward import reference_gradients, triton_gradients
from test_attention_forward import make_qkv


def fused_with_mask(q, k, v, dropout_p, seed, **kwargs):
    """Run the fused attention and, from the same generator state, the mask it used."""
    torch.manual_seed(seed)
    keep = kernels.attention_dropout_mask(q, k, dropout_p)
    torch.manual_seed(seed)
    with kernels.record_backends() as ran:
        out = kernels.attention(q, k, v, dropout_p=dropout_p, backend="triton", **kwargs)
    assert ran == ["triton"]
    return out, keep


@pytest.mark.parametrize("dropout_p", [0.1, 0.5])
def test_keep_rate_is_one_minus_p(dropout_p, device):
    q, k, _ = make_qkv(2, 4, 4, 64, 96, 16, torch.float32, device)
    keep = kernels.attention_dropout_mask(q, k, dropout_p)
    assert keep.shape == (2, 4, 64, 96) and keep.dtype == torch.bool
    n = keep.numel()
    rate = keep.float().mean().item()
    assert abs(rate - (1 - dropout_p)) < 5 * math.sqrt(dropout_p * (1 - dropout_p) / n)


def test_heads_and_batches_draw_independent_masks(device):
    q, k, _ = make_qkv(2, 3, 3, 40, 50, 16, torch.float32, device)
    keep = kernels.attention_dropout_mask(q, k, 0.5).flatten(2).float()  # (B, H, Nq*Nk)
    pairs = [(keep[0, 0], keep[0, 1]), (keep[0, 0], keep[1, 0]), (keep[1, 2], keep[0, 2])]
    for a, b in pairs:
        agreement = (a == b).float().mean().item()
        assert abs(agreement - 0.5) < 5 * math.sqrt(0.25 / a.numel())


def test_same_seed_same_output_other_seed_other_output(device):
    q, k, v = make_qkv(1, 2, 2, 33, 33, 32, torch.float16, device)
    first, _ = fused_with_mask(q, k, v, 0.2, seed=7)
    again, _ = fused_with_mask(q, k, v, 0.2, seed=7)
    other, _ = fused_with_mask(q, k, v, 0.2, seed=8)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("variant", ["plain", "causal_gqa", "key_padding"])
def test_forward_equals_reference_with_the_same_mask(variant, dtype, device):
    q, k, v = make_qkv(2, 4, 2 if variant == "causal_gqa" else 4, 37, 45, 32, dtype, device)
    kwargs = dict(enable_gqa=variant == "causal_gqa", is_causal=variant == "causal_gqa")
    if variant == "key_padding":
        lengths = torch.tensor([[30], [45]], device=device)
        kwargs["attn_mask"] = (torch.arange(45, device=device) < lengths)[:, None, None]
    out, keep = fused_with_mask(q, k, v, 0.25, seed=11, **kwargs)
    expected = reference.scaled_dot_product_attention(
        q.double(), k.double(), v.double(), dropout_p=0.25, dropout_mask=keep, **kwargs)
    tolerance = {torch.float32: 1e-5, torch.float16: 5e-3, torch.bfloat16: 4e-2}[dtype]
    torch.testing.assert_close(out.double(), expected, atol=tolerance, rtol=tolerance)


@pytest.mark.parametrize("variant", ["plain", "causal_gqa", "bool_mask"])
def test_backward_regenerates_the_forward_mask(variant, device):
    q, k, v = make_qkv(2, 4, 2 if variant == "causal_gqa" else 4, 29, 41, 24, torch.float32, device)
    kwargs = dict(enable_gqa=variant == "causal_gqa", is_causal=variant == "causal_gqa")
    if variant == "bool_mask":
        kwargs["attn_mask"] = torch.rand(2, 1, 29, 41, device=device) < 0.8
    dout = torch.randn_like(q)
    torch.manual_seed(3)
    keep = kernels.attention_dropout_mask(q, k, 0.3)
    torch.manual_seed(3)
    ours = triton_gradients(q, k, v, dout, dropout_p=0.3, **kwargs)
    exact = reference_gradients(q.double(), k.double(), v.double(), dout.double(),
                                dropout_p=0.3, dropout_mask=keep, **kwargs)
    for name, got, want in zip(("dq", "dk", "dv"), ours, exact):
        torch.testing.assert_close(got.double(), want, atol=2e-5, rtol=2e-5, msg=name)


def test_dropout_mask_rejects_bad_probability(device):
    q, k, _ = make_qkv(1, 1, 1, 4, 4, 16, torch.float32, device)
    with pytest.raises(ValueError, match="dropout_p must be in"):
        kernels.attention_dropout_mask(q, k, 1.0)
