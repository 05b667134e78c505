"""The attention variants (window, softcap, alibi_slopes, sinks): the reference against a row-by-row
float64 computation from the definitions, the torch backend against the reference (forward and
every gradient), their errors; the triton backend shares the cross-backend tests here, and has its
own in test_variants_triton.py."""
import math

import pytest
import torch

import kernels
import reference
from kernels.testing import check_attention

# (batch, query heads, key/value heads, query length, key length, head dim, value head dim)
SHAPES = [
    (2, 4, 4, 9, 9, 16, 16),
    (1, 6, 2, 5, 13, 8, 12),
    (2, 2, 1, 13, 6, 24, 8),
]

# Each case: the variant options (alibi and sinks by kind, drawn per shape), a mask kind, causality.
CASES = {
    "window": dict(window=(2, 1)),
    "mistral-window": dict(window=(3, 0), is_causal=True),
    "window-and-causal": dict(window=(2, 3), is_causal=True),  # causality cuts the right side to 0
    "window-right-only": dict(window=(None, 2)),
    "window-left-only-and-bool-mask": dict(window=(1, None), mask="bool"),
    "window-and-float-mask": dict(window=(2, 3), mask="float"),
    "softcap": dict(softcap=2.5),
    "softcap-and-float-mask": dict(softcap=1.0, mask="float"),
    "alibi-per-head": dict(alibi="heads"),
    "alibi-per-batch-causal": dict(alibi="batch", is_causal=True),
    "sinks": dict(sinks=True),
    "sinks-and-bool-mask": dict(sinks=True, mask="bool"),
    "everything-causal": dict(window=(4, 0), softcap=3.0, alibi="heads", sinks=True, is_causal=True),
    "everything-float-mask": dict(window=(2, 2), softcap=3.0, alibi="batch", sinks=True, mask="float"),
}


def naive_attention(q, k, v, *, scale, attn_mask=None, is_causal=False, window=None, softcap=None,
                    alibi_slopes=None, sinks=None, dropout_keep=None, dropout_p=0.0):
    """Row by row, key by key, from the definitions, in float64 Python numbers: the keys a row
    attends are listed explicitly, the softmax written out with the sink as one more term."""
    batch, heads_q, n_queries, _ = q.shape
    heads_kv, n_keys = k.size(1), k.size(2)
    group = heads_q // heads_kv
    scores_shape = (batch, heads_q, n_queries, n_keys)
    mask = None if attn_mask is None else attn_mask.expand(scores_shape)
    out = torch.zeros(batch, heads_q, n_queries, v.size(-1), dtype=torch.float64)
    for b in range(batch):
        for h in range(heads_q):
            slope = None
            if alibi_slopes is not None:
                slope = float(alibi_slopes[h] if alibi_slopes.dim() == 1 else alibi_slopes[b, h])
            for i in range(n_queries):
                logits, values = [], []
                for j in range(n_keys):
                    if is_causal and j > i:
                        continue
                    if window is not None and window[0] is not None and j < i - window[0]:
                        continue
                    if window is not None and window[1] is not None and j > i + window[1]:
                        continue
                    if mask is not None and mask.dtype == torch.bool and not mask[b, h, i, j]:
                        continue
                    logit = scale * float(q[b, h, i].double() @ k[b, h // group, j].double())
                    if softcap is not None:
                        logit = softcap * math.tanh(logit / softcap)
                    if slope is not None:
                        logit -= slope * abs(i - j)
                    if mask is not None and mask.dtype != torch.bool:
                        logit += float(mask[b, h, i, j])
                    kept = 1.0 if dropout_keep is None else float(dropout_keep[b, h, i, j]) / (1.0 - dropout_p)
                    logits.append(logit)
                    values.append(kept * v[b, h // group, j].double())
                if not logits:
                    continue  # nothing to attend: zeros, with or without a sink
                sink = [float(sinks[h])] if sinks is not None else []
                top = max(logits + sink)
                total = sum(math.exp(x - top) for x in logits + sink)
                for logit, value in zip(logits, values):
                    out[b, h, i] += math.exp(logit - top) / total * value
    return out


def make_case(shape, case, dtype=torch.float64, device="cpu"):
    """(q, k, v, attention kwargs) for a shape and a CASES entry, all fresh random values."""
    batch, heads_q, heads_kv, n_q, n_k, head_dim, value_dim = shape
    q = torch.randn(batch, heads_q, n_q, head_dim, dtype=dtype, device=device)
    k = torch.randn(batch, heads_kv, n_k, head_dim, dtype=dtype, device=device)
    v = torch.randn(batch, heads_kv, n_k, value_dim, dtype=dtype, device=device)
    kwargs = dict(scale=0.4, enable_gqa=heads_q != heads_kv, is_causal=case.get("is_causal", False))
    for option in ("window", "softcap"):
        if option in case:
            kwargs[option] = case[option]
    if case.get("alibi") == "heads":
        kwargs["alibi_slopes"] = torch.rand(heads_q, dtype=dtype, device=device) * 0.5 + 0.05
    elif case.get("alibi") == "batch":
        kwargs["alibi_slopes"] = torch.rand(batch, heads_q, dtype=dtype, device=device) * 0.5 + 0.05
    if case.get("sinks"):
        kwargs["sinks"] = torch.randn(heads_q, dtype=dtype, device=device) * 2.0
    if case.get("mask") == "bool":
        kwargs["attn_mask"] = torch.rand(batch, 1, n_q, n_k, device=device) > 0.4
    elif case.get("mask") == "float":
        kwargs["attn_mask"] = torch.randn(n_q, n_k, dtype=dtype, device=device)
    return q, k, v, kwargs


def without_gqa_flag(kwargs):
    return {name: value for name, value in kwargs.items() if name != "enable_gqa"}


@pytest.mark.parametrize("case_name", list(CASES))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: "x".join(map(str, shape)))
def test_reference_matches_the_definitions(shape, case_name):
    q, k, v, kwargs = make_case(shape, CASES[case_name])
    got = reference.scaled_dot_product_attention(q, k, v, **kwargs)
    torch.testing.assert_close(got, naive_attention(q, k, v, **without_gqa_flag(kwargs)))
    assert got.abs().sum() > 0


TENSOR_OPTIONS = ("alibi_slopes", "sinks", "attn_mask")


def leaves_of(q, k, v, kwargs, tensor_options=TENSOR_OPTIONS):
    """Fresh leaf tensors requiring grad: q, k, v and every float tensor option among `tensor_options`
    (slopes, sinks, a float mask)."""
    names = [name for name in tensor_options
             if kwargs.get(name) is not None and kwargs[name].is_floating_point()]
    tensors = [q, k, v] + [kwargs[name] for name in names]
    leaves = [tensor.detach().clone().requires_grad_() for tensor in tensors]
    return leaves, {**kwargs, **dict(zip(names, leaves[3:]))}, ["q", "k", "v"] + names


def outputs_and_gradients(backend, q, k, v, kwargs, grad_out, tensor_options=TENSOR_OPTIONS):
    leaves, options, names = leaves_of(q, k, v, kwargs, tensor_options)
    with kernels.record_backends() as ran:
        out = kernels.attention(*leaves[:3], backend=backend, **options)
    assert ran == [backend]
    return out, dict(zip(names, torch.autograd.grad(out, leaves, grad_out)))


@pytest.mark.parametrize("case_name", list(CASES))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: "x".join(map(str, shape)))
def test_torch_backend_matches_the_reference_with_gradients(shape, case_name, device):
    assert_matches_the_reference_with_gradients("torch", shape, case_name, device)


def assert_matches_the_reference_with_gradients(backend, shape, case_name, device, tensor_options=TENSOR_OPTIONS):
    """float64 inputs: `backend`'s output and gradients (q, k, v and the float `tensor_options`) against
    the reference's at float64 tolerances."""
    q, k, v, kwargs = make_case(shape, CASES[case_name], device=device)
    grad_out = torch.randn(q.shape[:-1] + (v.size(-1),), dtype=q.dtype, device=device)
    ours, our_grads = outputs_and_gradients(backend, q, k, v, kwargs, grad_out, tensor_options)
    exact, exact_grads = outputs_and_gradients("reference", q, k, v, kwargs, grad_out, tensor_options)
    torch.testing.assert_close(ours, exact)
    assert set(our_grads) == set(exact_grads)
    for name, grad in exact_grads.items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(our_grads[name], grad, msg=lambda text, name=name: f"d{name}: {text}")


@pytest.mark.parametrize("backend", ["torch", "reference"])
@pytest.mark.parametrize("case_name", ["everything-causal", "everything-float-mask"])
def test_gradients_pass_gradcheck(backend, case_name):
    """Finite differences, independent of autograd's formulas, for q, k, v, slopes, sinks and the mask."""
    q, k, v, kwargs = make_case((1, 4, 2, 5, 7, 4, 3), CASES[case_name])
    leaves, options, _ = leaves_of(q, k, v, kwargs)
    tensor_names = [name for name in ("alibi_slopes", "sinks", "attn_mask") if name in options
                    and options[name] is not None and options[name].requires_grad]

    def attention_of(query, key, value, *tensors):
        return kernels.attention(query, key, value, backend=backend,
                                 **{**options, **dict(zip(tensor_names, tensors))})

    assert torch.autograd.gradcheck(attention_of, leaves)


@pytest.mark.parametrize("backend", ["torch", "reference"])
def test_float_mask_gradient_without_variants(backend, device):
    """A trainable additive bias gets its gradient on the torch and reference backends (autograd)."""
    q, k, v = (torch.randn(2, 2, 5, 8, dtype=torch.float64, device=device) for _ in range(3))
    bias = torch.randn(2, 5, 5, dtype=torch.float64, device=device, requires_grad=True)
    out = kernels.attention(q, k, v, attn_mask=bias, backend=backend)
    (got,) = torch.autograd.grad(out, bias, torch.ones_like(out))
    exact = naive_attention(q.cpu(), k.cpu(), v.cpu(), scale=8 ** -0.5, attn_mask=bias.detach().cpu())
    torch.testing.assert_close(out.cpu(), exact)
    assert torch.autograd.gradcheck(
        lambda b: kernels.attention(q, k, v, attn_mask=b, backend=backend), (bias,))
    assert got.abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("case_name", ["mistral-window", "alibi-per-head", "softcap-and-float-mask",
                                       "everything-float-mask"])
def test_torch_backend_in_lower_precision(dtype, case_name, device):
    """Both torch paths (SDPA with a folded mask, and the explicit float32 scores) against the float64
    reference of the same rounded inputs; tolerances a few output roundings wide."""
    q, k, v, kwargs = make_case((2, 4, 2, 21, 33, 32, 32), CASES[case_name], dtype=dtype, device=device)
    exact_kwargs = {name: value.double() if isinstance(value, torch.Tensor) and value.is_floating_point() else value
                    for name, value in kwargs.items()}
    out = kernels.attention(q, k, v, backend="torch", **kwargs)
    assert out.dtype == dtype
    exact = reference.scaled_dot_product_attention(q.double(), k.double(), v.double(), **exact_kwargs)
    tolerance = 2e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(out.double(), exact, atol=tolerance, rtol=tolerance)


@pytest.mark.parametrize("backend", ["torch", "reference", "triton"])
def test_float32_slopes_and_sinks_with_half_inputs(backend):
    """The documented dtypes: float32 slopes and sinks beside bf16 queries."""
    q, k, v = (torch.randn(1, 2, 7, 16, dtype=torch.bfloat16) for _ in range(3))
    slopes, sinks = torch.rand(2) * 0.5, torch.randn(2)
    out = kernels.attention(q, k, v, alibi_slopes=slopes, sinks=sinks, backend=backend)
    exact = naive_attention(q, k, v, scale=0.25, alibi_slopes=slopes.double(), sinks=sinks.double())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.double(), exact, atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("backend", ["torch", "reference", "triton"])
@pytest.mark.parametrize("with_sinks", [False, True])
def test_rows_with_nothing_to_attend_are_zero(backend, with_sinks, device):
    """A window of one key (the diagonal), which a bool mask removes for some rows: those rows return
    zeros (the sink alone carries no value), with finite gradients."""
    q, k, v = (torch.randn(1, 2, 6, 8, dtype=torch.float64, device=device, requires_grad=True) for _ in range(3))
    keep = torch.ones(6, 6, dtype=torch.bool, device=device)
    keep[[1, 4], [1, 4]] = False
    sinks = torch.randn(2, dtype=torch.float64, device=device) if with_sinks else None
    out = kernels.attention(q, k, v, attn_mask=keep, window=(0, 0), sinks=sinks, backend=backend)
    assert (out[:, :, [1, 4]] == 0).all() and (out[:, :, [0, 2, 3, 5]] != 0).all()
    out.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))
    exact = naive_attention(q.detach().cpu(), k.detach().cpu(), v.detach().cpu(), scale=8 ** -0.5,
                            attn_mask=keep.cpu(), window=(0, 0), sinks=None if sinks is None else sinks.cpu())
    torch.testing.assert_close(out.detach().cpu(), exact)


@pytest.mark.parametrize("backend", ["torch", "reference", "triton"])
def test_rank3_inputs_have_one_head(backend):
    q, k, v = (torch.randn(3, 7, 8, dtype=torch.float64) for _ in range(3))
    mask = torch.rand(3, 7, 7) > 0.3
    slopes, sinks = torch.rand(3, 1, dtype=torch.float64), torch.randn(1, dtype=torch.float64)
    options = dict(window=(2, 1), softcap=4.0, alibi_slopes=slopes, sinks=sinks)
    out = kernels.attention(q, k, v, attn_mask=mask, backend=backend, **options)
    as_rank4 = kernels.attention(q[:, None], k[:, None], v[:, None], attn_mask=mask[:, None], backend=backend,
                                 **options)
    assert out.shape == (3, 7, 8)
    torch.testing.assert_close(out, as_rank4.squeeze(1))
    torch.testing.assert_close(out[:, None], naive_attention(q[:, None], k[:, None], v[:, None], scale=8 ** -0.5,
                                                              attn_mask=mask[:, None], **options))


@pytest.mark.parametrize("backend", ["torch", "reference", "triton"])
def test_empty_inputs(backend):
    q, k = torch.randn(1, 2, 4, 8), torch.randn(1, 2, 0, 8)
    sinks = torch.randn(2)
    no_keys = kernels.attention(q, k, k, sinks=sinks, softcap=2.0, backend=backend)
    assert no_keys.shape == (1, 2, 4, 8) and (no_keys == 0).all()
    no_queries = kernels.attention(q[:, :, :0], q, q, sinks=sinks, window=(1, 1), backend=backend)
    assert no_queries.shape == (1, 2, 0, 8)


def test_reference_replays_a_dropout_mask_with_variants():
    q, k, v, kwargs = make_case(SHAPES[1], CASES["everything-causal"])
    keep = torch.rand(1, 6, 5, 13) > 0.3
    got = reference.scaled_dot_product_attention(q, k, v, dropout_p=0.3, dropout_mask=keep, **kwargs)
    exact = naive_attention(q, k, v, dropout_keep=keep, dropout_p=0.3, **without_gqa_flag(kwargs))
    torch.testing.assert_close(got, exact)


@pytest.mark.parametrize("case_name", ["sinks", "everything-float-mask"])
def test_torch_backend_drops_the_weights_as_the_reference(case_name, device):
    """The explicit path drops the (B, Hq, Nq, Nk) weights with torch's dropout, as the reference does:
    from the same seed both draw the same mask."""
    q, k, v, kwargs = make_case(SHAPES[1], CASES[case_name], device=device)
    torch.manual_seed(1234)
    ours = kernels.attention(q, k, v, dropout_p=0.3, backend="torch", **kwargs)
    torch.manual_seed(1234)
    exact = reference.scaled_dot_product_attention(q, k, v, dropout_p=0.3, **kwargs)
    torch.testing.assert_close(ours, exact)
    assert not torch.allclose(ours, kernels.attention(q, k, v, backend="torch", **kwargs))


def test_window_none_none_is_no_window():
    q, k, v = (torch.randn(1, 2, 5, 8) for _ in range(3))
    torch.testing.assert_close(kernels.attention(q, k, v, window=(None, None), backend="torch"),
                               kernels.attention(q, k, v, backend="torch"))


B, H, N, D = 2, 4, 8, 16


def qkv(device="cpu", **overrides):
    tensors = {name: torch.randn(B, H, N, D, device=device) for name in ("query", "key", "value")}
    tensors.update(overrides)
    return tensors


BAD_VARIANTS = [
    (dict(window=3), TypeError, "window must be a pair \\(left, right\\)"),
    (dict(window=(1, 2, 3)), ValueError, "window must be a pair \\(left, right\\).*3 values"),
    (dict(window=(-1, 0)), ValueError, "window's left side must be >= 0"),
    (dict(window=(0, -2)), ValueError, "window's right side must be >= 0"),
    (dict(window=(1.5, 0)), TypeError, "window's left side must be an int"),
    (dict(window=(0, True)), TypeError, "window's right side must be an int"),
    (dict(softcap=0.0), ValueError, "softcap must be > 0"),
    (dict(softcap=-2), ValueError, "softcap must be > 0"),
    (dict(softcap=float("inf")), ValueError, "softcap must be a finite float"),
    (dict(softcap=float("nan")), ValueError, "softcap must be a finite float"),
    (dict(softcap="30"), ValueError, "softcap must be a finite float"),
    (dict(alibi_slopes=[0.5] * H), TypeError, "alibi_slopes must be a torch.Tensor"),
    (dict(alibi_slopes=torch.ones(H, dtype=torch.int32)), TypeError, "alibi_slopes must be float32 or the query's"),
    (dict(alibi_slopes=torch.ones(H, dtype=torch.float64)), TypeError, "alibi_slopes must be float32 or the query's"),
    (dict(alibi_slopes=torch.ones(H + 1)), ValueError,
     "alibi_slopes must have shape \\(Hq,\\) = \\(4,\\) or \\(B, Hq\\) = \\(2, 4\\) \\(query has 4 heads\\)"),
    (dict(alibi_slopes=torch.ones(B, H, 1)), ValueError, "alibi_slopes must have shape"),
    (dict(alibi_slopes=torch.ones(H, device="meta")), ValueError, "alibi_slopes is on meta but query is on cpu"),
    (dict(sinks=torch.ones(B, H)), ValueError, "sinks must have shape \\(Hq,\\) = \\(4,\\) \\(query has 4 heads\\)"),
    (dict(sinks=torch.ones(H, dtype=torch.float16)), TypeError, "sinks must be float32 or the query's dtype"),
    (dict(sinks=torch.ones(H, device="meta")), ValueError, "sinks is on meta but query is on cpu"),
    (dict(sinks=3.0), TypeError, "sinks must be a torch.Tensor"),
]


@pytest.mark.parametrize("backend", ["torch", "reference", "triton"])
@pytest.mark.parametrize("options, error, message", BAD_VARIANTS)
def test_bad_variants_are_named_before_anything_runs(options, error, message, backend):
    with kernels.record_backends() as ran, pytest.raises(error, match=message):
        kernels.attention(**qkv(), **options, backend=backend)
    assert ran == []


def test_gqa_sinks_are_per_query_head():
    q, kv = torch.randn(1, 4, 5, 8), torch.randn(1, 2, 5, 8)
    with pytest.raises(ValueError, match="sinks must have shape \\(Hq,\\) = \\(4,\\)"):
        kernels.attention(q, kv, kv, enable_gqa=True, sinks=torch.zeros(2), backend="torch")


def test_rank3_slopes_of_batch_size_are_refused():
    q = torch.randn(3, 5, 8)
    with pytest.raises(ValueError, match="rank-3 inputs have one head"):
        kernels.attention(q, q, q, alibi_slopes=torch.rand(3), backend="torch")


def test_no_variant_in_effect_keeps_the_triton_path(device):
    """`window=(None, None)` is no window: the call runs the Triton kernel (the plain path) and matches."""
    q, k, v = (torch.randn(1, 2, 9, 16, device=device) for _ in range(3))
    with kernels.record_backends() as ran:
        out = kernels.attention(q, k, v, window=(None, None), backend="triton")
    assert ran == ["triton"]
    torch.testing.assert_close(out, reference.scaled_dot_product_attention(q, k, v), atol=1e-5, rtol=1e-5)


def test_parity_toolkit_judges_variants():
    """kernels.testing.check_attention takes the variants: the torch backend's float32 output passes,
    and the same call without its sinks fails by a wide margin."""
    q, k, v, kwargs = make_case((2, 4, 2, 17, 23, 32, 32), CASES["everything-float-mask"], dtype=torch.float32)
    kwargs["attn_mask"] = kwargs["attn_mask"].float()
    out = kernels.attention(q, k, v, backend="torch", **kwargs)
    assert check_attention(out, q, k, v, **kwargs).passed
    assert check_attention(out, q, k, v, **{**kwargs, "sinks": None}).error_ratio > 10
