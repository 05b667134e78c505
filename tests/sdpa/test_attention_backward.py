"""The Triton backward (dQ, dK, dV) against autograd through the float64 reference."""
import math

import pytest
import torch

import kernels
import reference
from kernels.sdpa.triton.backward import launch_backward
from kernels.sdpa.triton.forward import launch_forward
from kernels.testing import Tolerance, assert_parity
from kernels.testing.tolerances import tolerance_for
from test_attention_forward import DTYPES, make_qkv

# Gradients sum over a sequence, so their rounding grows with it: the floor of the pass rule is
# scaled by each gradient's own size (the plain-PyTorch error term usually dominates anyway).
GRADIENT_FLOOR_SCALE = 4.0


def gradient_tolerance(dtype: torch.dtype, exact_gradient: torch.Tensor) -> Tolerance:
    base = tolerance_for(dtype)
    scale = GRADIENT_FLOOR_SCALE * max(1.0, exact_gradient.abs().max().item())
    return Tolerance(error_ratio=base.error_ratio, absolute_floor=base.absolute_floor * scale)


def _leaves(q, k, v, kwargs, mask_grad):
    """Fresh leaves q, k, v (and with `mask_grad` the float attn_mask), and the kwargs that use them."""
    leaves = [t.detach().requires_grad_() for t in (q, k, v)]
    if mask_grad:
        kwargs = {**kwargs, "attn_mask": kwargs["attn_mask"].detach().requires_grad_()}
        leaves.append(kwargs["attn_mask"])
    return leaves, kwargs


def reference_gradients(q, k, v, dout, *, mask_grad=False, **kwargs):
    """dq, dk, dv, and with `mask_grad` the float attn_mask's gradient, through the reference."""
    leaves, kwargs = _leaves(q, k, v, kwargs, mask_grad)
    out = reference.scaled_dot_product_attention(*leaves[:3], **kwargs)
    return torch.autograd.grad(out, leaves, dout)


def triton_gradients(q, k, v, dout, *, mask_grad=False, **kwargs):
    leaves, kwargs = _leaves(q, k, v, kwargs, mask_grad)
    with kernels.record_backends() as ran:
        out = kernels.attention(*leaves[:3], backend="triton", **kwargs)
    assert ran == ["triton"]
    return torch.autograd.grad(out, leaves, dout)


def assert_gradients_match(q, k, v, dout, attn_mask=None, **kwargs):
    """The pass rule of kernels.testing applied to each of dq, dk, dv, and to a float mask's gradient."""
    mask_grad = attn_mask is not None and attn_mask.is_floating_point()
    exact_mask = attn_mask.double() if mask_grad else attn_mask
    exact = reference_gradients(q.double(), k.double(), v.double(), dout.double(), mask_grad=mask_grad,
                                attn_mask=exact_mask, **kwargs)
    plain = reference_gradients(q, k, v, dout, mask_grad=mask_grad, attn_mask=attn_mask, **kwargs)
    ours = triton_gradients(q, k, v, dout, mask_grad=mask_grad, attn_mask=attn_mask, **kwargs)
    for name, got, want, baseline in zip(("dq", "dk", "dv", "dmask"), ours, exact, plain):
        try:
            assert_parity(got, want, baseline, tolerance=gradient_tolerance(q.dtype, want))
        except AssertionError as failure:
            raise AssertionError(f"{name}: {failure}") from None


BACKWARD_SHAPES = [
    (1, 1, 1, 1, 1, 16),
    (2, 3, 3, 17, 17, 24),
    (1, 2, 2, 63, 63, 80),
    (1, 4, 2, 45, 70, 96),
    (1, 4, 1, 33, 65, 64),
    (1, 2, 2, 40, 17, 128),
    (1, 2, 1, 19, 23, 160),  # padded to 256: float32 dK/dV reads q and dO twice (rereads_query_tiles)
]


@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BACKWARD_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_gradients_on_awkward_shapes(shape, dtype, is_causal, device):
    q, k, v = make_qkv(*shape, dtype, device)
    dout = torch.randn_like(q)
    assert_gradients_match(q, k, v, dout, is_causal=is_causal, enable_gqa=shape[1] != shape[2])


@pytest.mark.parametrize("kind", ["bool", "additive"])
@pytest.mark.parametrize("mask_shape", [(2, 1, 1, 37), (21, 37), (1, 4, 21, 1), (2, 4, 21, 37)])
def test_gradients_with_broadcast_masks(mask_shape, kind, device):
    q, k, v = make_qkv(2, 4, 2, 21, 37, 32, torch.float16, device)
    keep = torch.rand(mask_shape, device=device) < 0.7
    mask = keep if kind == "bool" else torch.randn(mask_shape, device=device).masked_fill(~keep, float("-inf"))
    assert_gradients_match(q, k, v, torch.randn_like(q), attn_mask=mask, enable_gqa=True)


def test_fully_masked_rows_and_unattended_keys_get_zero_gradients(device):
    q, k, v = make_qkv(2, 2, 2, 19, 40, 32, torch.float32, device)
    keep = torch.rand(2, 1, 19, 40, device=device) < 0.6
    keep[0, :, 5] = False  # a query row that attends nothing
    keep[1, :, :, 33:] = False  # keys that no query attends
    dq, dk, dv = triton_gradients(q, k, v, torch.randn_like(q), attn_mask=keep)
    assert (dq[0, :, 5] == 0).all()
    assert (dk[1, :, 33:] == 0).all() and (dv[1, :, 33:] == 0).all()
    assert_gradients_match(q, k, v, torch.randn_like(q), attn_mask=keep)


def test_key_padding_skips_whole_key_blocks(device):
    q, k, v = make_qkv(3, 2, 2, 29, 96, 32, torch.float32, device)
    positions = torch.arange(96, device=device)
    starts, ends = torch.tensor([0, 35, 50], device=device), torch.tensor([33, 96, 65], device=device)
    mask = ((positions >= starts[:, None]) & (positions < ends[:, None]))[:, None, None, :]
    dq, dk, dv = triton_gradients(q, k, v, torch.randn_like(q), attn_mask=mask)
    assert (dk[0, :, 33:] == 0).all() and (dv[2, :, :50] == 0).all()
    assert_gradients_match(q, k, v, torch.randn_like(q), attn_mask=mask)


@pytest.mark.parametrize("layout", ["bnhd_view", "packed_qkv"])
def test_gradients_through_strided_views(layout, device):
    batch, heads, n, head_dim = 2, 3, 27, 32
    if layout == "bnhd_view":
        q, k, v = (torch.randn(batch, n, heads, head_dim, device=device).transpose(1, 2) for _ in range(3))
    else:
        qkv = torch.randn(batch, n, 3, heads, head_dim, device=device)
        q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
    dout = torch.randn(batch, n, heads, head_dim, device=device).transpose(1, 2)  # as a head merge sends it back
    assert_gradients_match(q, k, v, dout, is_causal=True)


def test_kernels_write_every_gradient(device):
    """Poison dq, dk, dv with NaN; every element must be overwritten."""
    q, k, v = make_qkv(2, 4, 2, 45, 31, 40, torch.float32, device)
    dout = torch.randn_like(q)
    lse = torch.empty(2, 4, 45, device=device)
    out, lse = launch_forward(q, k, v, None, True, 1 / math.sqrt(40), lse=lse)
    grads = tuple(torch.full_like(t, float("nan")) for t in (q, k, v))
    written = launch_backward(q, k, v, out, lse, dout, None, True, 1 / math.sqrt(40), grads=grads)
    assert all(w is g for w, g in zip(written, grads))
    exact = reference_gradients(q.double(), k.double(), v.double(), dout.double(), is_causal=True, enable_gqa=True)
    for got, want in zip(written, exact):
        torch.testing.assert_close(got.double(), want, atol=1e-4, rtol=1e-4)


def test_backward_is_deterministic(device):
    q, k, v = make_qkv(1, 4, 1, 50, 70, 32, torch.float16, device)
    dout = torch.randn_like(q)
    first = triton_gradients(q, k, v, dout, enable_gqa=True)
    second = triton_gradients(q, k, v, dout, enable_gqa=True)
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_double_backward_is_refused_clearly(device):
    q, k, v = (torch.randn(1, 2, 5, 16, device=device, requires_grad=True) for _ in range(3))
    with kernels.record_backends() as ran:
        out = kernels.attention(q, k, v, backend="triton")
    assert ran == ["triton"]
    (dq,) = torch.autograd.grad(out.square().sum(), q, create_graph=True)
    with pytest.raises(NotImplementedError, match="no double backward .* use backend='torch'"):
        dq.sum().backward()


def test_training_steps_match_the_reference_model(device):
    """A few SGD steps of a small attention model: the fused and reference losses stay together."""
    def build(module_type):
        torch.manual_seed(1234)
        attention = module_type(d_model=32, num_heads=4)
        return torch.nn.ModuleDict(dict(attention=attention, head=torch.nn.Linear(32, 5))).to(device)

    models = {"fused": build(kernels.MultiHeadAttention), "reference": build(reference.MultiHeadAttention)}
    x = torch.randn(4, 12, 32, device=device)
    target = torch.randint(0, 5, (4, 12), device=device)
    pad = torch.ones(4, 1, 1, 12, device=device)
    pad[1, ..., 9:] = 0
    losses = {name: [] for name in models}
    for name, model in models.items():
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        for _ in range(4):
            logits = model["head"](model["attention"](x, x, x, pad))
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses[name].append(loss.item())
    assert losses["fused"][-1] < losses["fused"][0]
    torch.testing.assert_close(torch.tensor(losses["fused"]), torch.tensor(losses["reference"]), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("case", ["plain", "causal_gqa", "bool_mask", "additive_mask"])
def test_gradcheck_in_float64(case, device):
    """Analytic gradients of the Triton kernels against finite differences of the Triton forward."""
    # Few elements (each costs two interpreted forwards), odd sizes: 3 queries, 4 keys, head dim 3.
    q = torch.randn(1, 2, 3, 3, dtype=torch.float64, device=device, requires_grad=True)
    k = torch.randn(1, 2 if case != "causal_gqa" else 1, 4, 3, dtype=torch.float64, device=device, requires_grad=True)
    v = torch.randn_like(k, requires_grad=True)
    kwargs = {"plain": {}, "causal_gqa": dict(is_causal=True, enable_gqa=True)}.get(case, {})
    if case == "bool_mask":
        kwargs["attn_mask"] = torch.rand(1, 1, 3, 4, device=device) < 0.6
        kwargs["attn_mask"][..., 1, :] = False  # a fully masked row too
    elif case == "additive_mask":
        kwargs["attn_mask"] = torch.randn(3, 4, dtype=torch.float64, device=device)

    def fused(q, k, v):
        return kernels.attention(q, k, v, backend="triton", **kwargs)

    assert torch.autograd.gradcheck(fused, (q, k, v), eps=1e-6, atol=1e-5, rtol=1e-4)
