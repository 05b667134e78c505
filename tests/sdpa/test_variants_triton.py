"""The attention variants (window, softcap, alibi_slopes, sinks) in the Triton kernels: forward,
backward (the sinks' gradient included) and split-K decode against the float64 reference, in every
dtype, with masks, causality, GQA and dropout; and proof that key tiles outside the window are never
read (NaN planted there would reach the results)."""
import dataclasses
import math

import pytest
import torch

import kernels
import reference
from kernels.sdpa.triton import backward, configs
from kernels.sdpa.triton.common import accumulator_dtype
from kernels.sdpa.triton.decode import launch_decode
from kernels.sdpa.triton.forward import launch_forward
from kernels.sdpa.variants import attention_variants
from kernels.testing import assert_attention_close, assert_parity
from test_attention_backward import gradient_tolerance
from test_attention_decode import poisoned_outputs
from test_variants import (
    CASES, SHAPES, assert_matches_the_reference_with_gradients, leaves_of, make_case, outputs_and_gradients,
)

TRITON_GRADIENTS = ("sinks", "attn_mask")  # the triton backend's gradients beyond q, k, v (not the slopes')


def in_float64(kwargs):
    return {name: value.double() if isinstance(value, torch.Tensor) and value.is_floating_point() else value
            for name, value in kwargs.items()}


@pytest.mark.parametrize("case_name", list(CASES))
@pytest.mark.parametrize("shape", SHAPES[1:], ids=lambda shape: "x".join(map(str, shape)))
def test_float64_kernels_match_the_reference_with_gradients(shape, case_name, device):
    """float64 inputs run the kernels in float64: any slip in the variant math shows far above rounding."""
    assert_matches_the_reference_with_gradients("triton", shape, case_name, device, tensor_options=TRITON_GRADIENTS)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("case_name", ["mistral-window", "sinks-and-bool-mask", "everything-causal",
                                       "everything-float-mask"])
def test_lower_precision_passes_the_parity_rule(dtype, case_name, device):
    """Output and every gradient within the pass rule: at most twice the error of the same math in
    plain PyTorch in that dtype (the reference), plus the dtype's floor."""
    q, k, v, kwargs = make_case((2, 4, 2, 21, 33, 32, 32), CASES[case_name], dtype=dtype, device=device)
    if kwargs.get("sinks") is not None:
        kwargs["sinks"] = kwargs["sinks"].float()  # float32 sinks beside 16-bit inputs, as documented
    grad_out = torch.randn(q.shape[:-1] + (v.size(-1),), dtype=dtype, device=device)
    ours, our_grads = outputs_and_gradients("triton", q, k, v, kwargs, grad_out, TRITON_GRADIENTS)
    assert ours.dtype == dtype
    assert_attention_close(ours, q, k, v, **kwargs)
    exact_inputs = (q.double(), k.double(), v.double())
    _, exact_grads = outputs_and_gradients("reference", *exact_inputs, in_float64(kwargs), grad_out.double(),
                                           TRITON_GRADIENTS)
    _, plain_grads = outputs_and_gradients("reference", q, k, v, kwargs, grad_out, TRITON_GRADIENTS)
    for name, want in exact_grads.items():
        try:
            assert_parity(our_grads[name], want, plain_grads[name], tolerance=gradient_tolerance(dtype, want))
        except AssertionError as failure:
            raise AssertionError(f"d{name}: {failure}") from None


@pytest.mark.parametrize("case_name", ["window-and-float-mask", "everything-causal", "everything-float-mask"])
def test_dropout_with_variants_replays_through_the_reference(case_name, device):
    """The kernel's own dropout mask (attention_dropout_mask) replayed by the reference: output and
    gradients agree in float64, so the variants and dropout compose as the definition says."""
    assert_dropout_replays_through_the_reference((2, 4, 2, 19, 27, 16, 16), case_name, device)


def assert_dropout_replays_through_the_reference(shape, case_name, device):
    q, k, v, kwargs = make_case(shape, CASES[case_name], device=device)
    grad_out = torch.randn(q.shape[:-1] + (v.size(-1),), dtype=q.dtype, device=device)
    torch.manual_seed(4321)
    keep = kernels.attention_dropout_mask(q, k, 0.3)
    torch.manual_seed(4321)
    ours, our_grads = outputs_and_gradients("triton", q, k, v, {**kwargs, "dropout_p": 0.3}, grad_out, TRITON_GRADIENTS)
    leaves, options, names = leaves_of(q, k, v, kwargs, TRITON_GRADIENTS)
    exact = reference.scaled_dot_product_attention(*leaves[:3], dropout_p=0.3, dropout_mask=keep, **options)
    torch.testing.assert_close(ours, exact)
    for name, grad in zip(names, torch.autograd.grad(exact, leaves, grad_out)):
        torch.testing.assert_close(our_grads[name], grad, msg=lambda text, name=name: f"d{name}: {text}")


@pytest.mark.parametrize("case_name, dropout", [("everything-causal", False), ("everything-float-mask", False),
                                                 ("everything-causal", True)])
def test_dk_dv_with_split_columns_matches_the_reference_with_gradients(case_name, dropout, device, monkeypatch):
    """dK/dV with each key block's columns split over two programs (COLUMN_SPLITS, the tile 16-bit d256
    takes on sm_90 with the score variants and uneven lengths or dropout), at the interpreter's tile:
    D 40 and Dv 24 pad to 64 and 32, so each program holds 32 and 16 columns, part of them padding."""
    split = dataclasses.replace(configs.INTERPRETER_BACKWARD_TILE, column_splits=2).to_triton()
    monkeypatch.setattr(backward._attention_backward_dk_dv_kernel, "configs", [split])  # one config: no pruning
    shape = (1, 4, 2, 21, 37, 40, 24)
    if dropout:
        assert_dropout_replays_through_the_reference(shape, case_name, device)
    else:
        assert_matches_the_reference_with_gradients("triton", shape, case_name, device, tensor_options=TRITON_GRADIENTS)


DECODE_CASES = ["window", "window-right-only", "window-left-only-and-bool-mask", "softcap", "alibi-per-head",
                "sinks", "everything-float-mask"]


@pytest.mark.parametrize("case_name", DECODE_CASES)
@pytest.mark.parametrize("shape, num_splits", [((2, 4, 2, 1, 70, 16, 16), 3), ((1, 6, 2, 3, 45, 24, 8), 2)],
                         ids=["1-query-3-splits", "3-queries-2-splits"])
def test_split_k_decode_matches_the_reference_and_the_normal_kernel(shape, num_splits, case_name, device):
    """The split kernel (the sink counted once, in the first split) against the float64 reference, and
    its lse against the normal kernel's; both write into NaN-poisoned outputs."""
    q, k, v, kwargs = make_case(shape, CASES[case_name], device=device)
    variants = attention_variants(q, window=kwargs.get("window"), softcap=kwargs.get("softcap"),
                                  alibi_slopes=kwargs.get("alibi_slopes"), sinks=kwargs.get("sinks"))
    mask = kwargs.get("attn_mask")
    if mask is not None:
        mask = mask.expand(q.size(0), q.size(1), q.size(2), k.size(2))
    out, lse = launch_decode(q, k, v, mask, 0.4, num_splits, *poisoned_outputs(q, v), variants=variants)
    normal_out, normal_lse = launch_forward(q, k, v, mask, False, 0.4, *poisoned_outputs(q, v), variants=variants)
    torch.testing.assert_close(out, reference.scaled_dot_product_attention(q, k, v, **kwargs))
    torch.testing.assert_close(out, normal_out)
    torch.testing.assert_close(lse, normal_lse)
    assert torch.isfinite(lse).any()


def test_rows_without_keys_have_the_sink_as_lse(device):
    """With sinks a row that attends nothing has weight 1 on the sink: zeros out, lse = sink (also
    with no key at all), and the kernels' lse agrees with the float64 log-sum-exp elsewhere."""
    q, k, v = (torch.randn(1, 2, 6, 8, dtype=torch.float64, device=device) for _ in range(3))
    keep = torch.ones(6, 6, dtype=torch.bool, device=device)
    keep[[1, 4], [1, 4]] = False
    sinks = torch.randn(2, dtype=torch.float64, device=device)
    variants = attention_variants(q, window=(0, 0), softcap=None, alibi_slopes=None, sinks=sinks)
    mask = keep.expand(1, 2, 6, 6)
    out, lse = launch_forward(q, k, v, mask, False, 0.5, *poisoned_outputs(q, v), variants=variants)
    assert (out[:, :, [1, 4]] == 0).all()
    torch.testing.assert_close(lse[:, :, [1, 4]], sinks[None, :, None].expand(1, 2, 2))
    diagonal = (q * k).sum(-1) * 0.5
    attended = [0, 2, 3, 5]
    torch.testing.assert_close(lse[:, :, attended], torch.logaddexp(diagonal, sinks[None, :, None])[:, :, attended])
    empty = k[:, :, :0]
    _, no_keys_lse = launch_forward(q, empty, empty, None, False, 0.5, *poisoned_outputs(q, v), variants=variants)
    torch.testing.assert_close(no_keys_lse, sinks[None, :, None].expand(1, 2, 6))


def test_slope_gradients_are_refused_by_name(device):
    q, k, v = (torch.randn(1, 2, 5, 8, device=device, requires_grad=True) for _ in range(3))
    slopes = torch.rand(2, device=device, requires_grad=True)
    out = kernels.attention(q, k, v, alibi_slopes=slopes, backend="triton")
    with pytest.raises(NotImplementedError, match="does not compute gradients for alibi_slopes; detach it or use "
                                                  "backend='torch'"):
        out.sum().backward()
    out = kernels.attention(q, k, v, alibi_slopes=slopes.detach(), backend="triton")
    out.sum().backward()
    assert all(torch.isfinite(tensor.grad).all() for tensor in (q, k, v))


# Window (4, 4) over 512 positions: rows 192..319 see keys 188..323 only. At the interpreter's tiles
# (forward 32x16, backward 16x32) every tile those rows' blocks visit lies inside [128, 384); the
# NaN planted in [0, 128) and [384, 512) of q, k, v and dO reaches them only if a tile out there is read.
WINDOW, LENGTH, CHECKED = (4, 4), 512, slice(192, 320)
POISONED = (slice(0, 128), slice(384, 512))


def poisoned_copy(tensor):
    poisoned = tensor.clone()
    for rows in POISONED:
        poisoned[:, :, rows] = float("nan")
    return poisoned


def test_key_tiles_outside_the_window_are_never_read(device):
    q, k, v, grad_out = (torch.randn(1, 1, LENGTH, 16, device=device) for _ in range(4))
    ours, our_grads = outputs_and_gradients("triton", *map(poisoned_copy, (q, k, v)), dict(window=WINDOW),
                                            poisoned_copy(grad_out))
    exact, exact_grads = outputs_and_gradients("reference", q.double(), k.double(), v.double(),
                                               dict(window=WINDOW), grad_out.double())
    torch.testing.assert_close(ours[:, :, CHECKED].double(), exact[:, :, CHECKED], atol=2e-6, rtol=1e-5)
    for name in ("q", "k", "v"):
        torch.testing.assert_close(our_grads[name][:, :, CHECKED].double(), exact_grads[name][:, :, CHECKED],
                                   atol=2e-5, rtol=1e-5, msg=lambda text, name=name: f"d{name}: {text}")
    # The control: a band wide enough to reach the poison reads it, and those rows turn NaN.
    wide = kernels.attention(*map(poisoned_copy, (q, k, v)), window=(100, 100), backend="triton")
    assert wide[:, :, CHECKED].isnan().any()


def test_decode_splits_outside_the_window_read_no_key(device):
    """A decode step over 512 keys with window (None, 8): the splits past key 9 visit no tile."""
    q = torch.randn(1, 4, 2, 16, device=device)
    k, v = (torch.randn(1, 2, LENGTH, 16, device=device) for _ in range(2))
    poisoned_k, poisoned_v = k.clone(), v.clone()
    poisoned_k[:, :, 128:], poisoned_v[:, :, 128:] = float("nan"), float("nan")
    variants = attention_variants(q, window=(None, 8), softcap=None, alibi_slopes=None, sinks=None)
    out, lse = launch_decode(q, poisoned_k, poisoned_v, None, 0.25, 4, *poisoned_outputs(q, k), variants=variants)
    exact = reference.scaled_dot_product_attention(q.double(), k.double(), v.double(), scale=0.25, enable_gqa=True,
                                                   window=(None, 8))
    torch.testing.assert_close(out.double(), exact, atol=2e-6, rtol=1e-5)
    assert lse.dtype == accumulator_dtype(q.dtype) and torch.isfinite(lse).all()
    assert math.isfinite(out.abs().sum().item())


def test_window_with_a_key_padding_mask(device):
    """A (B, 1, 1, Nk) bool mask takes the kernels' key-span path (USE_KEY_RANGE), which the window's
    band then cuts further: forward and gradients against the reference in float64."""
    q, k, v = (torch.randn(2, 2, 37, 16, dtype=torch.float64, device=device) for _ in range(3))
    lengths = torch.tensor([[25], [37]], device=device)
    kwargs = dict(attn_mask=(torch.arange(37, device=device) < lengths)[:, None, None], window=(5, 3),
                  sinks=torch.randn(2, dtype=torch.float64, device=device))
    grad_out = torch.randn_like(q)
    ours, our_grads = outputs_and_gradients("triton", q, k, v, kwargs, grad_out, TRITON_GRADIENTS)
    exact, exact_grads = outputs_and_gradients("reference", q, k, v, kwargs, grad_out, TRITON_GRADIENTS)
    torch.testing.assert_close(ours, exact)
    for name, grad in exact_grads.items():
        torch.testing.assert_close(our_grads[name], grad, msg=lambda text, name=name: f"d{name}: {text}")
