"""Bad input gets a clear error naming the argument, before any kernel runs."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import kernels

B, H, N, D = 2, 4, 8, 16


def qkv(**overrides):
    tensors = {name: torch.randn(B, H, N, D) for name in ("query", "key", "value")}
    tensors.update(overrides)
    return tensors


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(qkv(query=[[1.0]])), TypeError, "query must be a torch.Tensor"),
    (dict(qkv(key=torch.randn(B, H, N, D, 1))), ValueError, "key must have rank 4"),
    (dict(qkv(value=torch.randn(N))), ValueError, "value must have rank 4"),
    (dict(qkv(query=torch.randn(B, N, D))), ValueError, "same rank"),
    (dict(qkv(query=torch.randint(0, 5, (B, H, N, D)))), TypeError, "query must be a floating-point"),
    (dict(qkv(key=torch.randn(B, H, N, D, dtype=torch.float16))), TypeError, "share one dtype"),
    (dict(qkv(key=torch.randn(B + 1, H, N, D))), ValueError, "batch sizes differ"),
    (dict(qkv(value=torch.randn(B, H, N + 1, D))), ValueError, "must match in all but the last dim"),
    (dict(qkv(key=torch.randn(B, H, N, D + 1), value=torch.randn(B, H, N, D + 1))), ValueError, "head_dim"),
    (dict(qkv(key=torch.randn(B, 2, N, D), value=torch.randn(B, 2, N, D))), ValueError, "enable_gqa=True"),
    (dict(qkv(key=torch.randn(B, 3, N, D), value=torch.randn(B, 3, N, D)), enable_gqa=True), ValueError,
     "multiple of key/value heads"),
    (dict(qkv(), attn_mask=torch.ones(N, N + 1, dtype=torch.bool)), ValueError, "does not broadcast"),
    (dict(qkv(), attn_mask=torch.ones(3, 1, N, N, dtype=torch.bool)), ValueError, "does not broadcast"),
    (dict(qkv(), attn_mask=torch.ones(N, N, dtype=torch.int32)), TypeError, "attn_mask must be bool"),
    (dict(qkv(), attn_mask=torch.ones(N, N, dtype=torch.float64)), TypeError, "attn_mask must be bool"),
    (dict(qkv(), attn_mask="causal"), TypeError, "attn_mask must be a torch.Tensor"),
    (dict(qkv(), attn_mask=torch.ones(N, N, dtype=torch.bool), is_causal=True), ValueError, "cannot be combined"),
    (dict(qkv(), is_causal=1), TypeError, "is_causal must be a bool"),
    (dict(qkv(), dropout_p=1.5), ValueError, "dropout_p must be a float in \\[0, 1\\]"),
    (dict(qkv(), dropout_p=torch.tensor([0.1])), ValueError, "dropout_p must be a float in"),
    (dict(qkv(key=torch.randn(B, 0, N, D), value=torch.randn(B, 0, N, D)), enable_gqa=True), ValueError,
     "key/value have 0 heads"),
    # torch's own SDPA stops the process (SIGFPE) on this one: it must never get past the checks
    (dict(qkv(key=torch.randn(B, 0, N, D)), enable_gqa=True), ValueError, "must match in all but the last dim"),
    (dict(qkv(), dropout_p=-0.1), ValueError, "dropout_p must be a float in"),
    (dict(qkv(), scale=float("nan")), ValueError, "scale must be None or a finite float"),
    (dict(qkv(), scale="0.5"), ValueError, "scale must be None or a finite float"),
    (dict(qkv(), scale=float("inf")), ValueError, "scale must be None or a finite float"),
    (dict(qkv(), scale=torch.tensor([0.5])), ValueError, "scale must be None or a finite float"),
    (dict(qkv(), backend="cuda"), ValueError, "backend must be one of"),
])
@pytest.mark.parametrize("backend", [None, "torch"])  # "torch": its common call leaves to SDPA what SDPA refuses
def test_bad_arguments_are_named(kwargs, error, message, backend):
    with pytest.raises(error, match=message):
        kernels.attention(**{"backend": backend, **kwargs})


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(qkv(**{n: torch.randn(B, H, N, D).to(torch.float8_e4m3fn) for n in ("query", "key", "value")})),
     TypeError, "float16, bfloat16, float32 and float64"),
    (dict(qkv(**{n: torch.randn(1, 1, 4, 264) for n in ("query", "key", "value")})), ValueError,
     "head_dim 264 exceeds"),
    (dict(qkv(value=torch.randn(B, H, N, 300))), ValueError, "value head_dim 300 exceeds"),
])
def test_triton_limits_are_named(kwargs, error, message):
    with pytest.raises(error, match=message):
        kernels.attention(**kwargs, backend="triton")


def test_limits_of_the_triton_backend_do_not_bind_the_torch_backend():
    q = torch.randn(1, 2, 5, 300)
    out = kernels.attention(q, q, q, backend="torch")
    torch.testing.assert_close(out, torch.nn.functional.scaled_dot_product_attention(q, q, q))


def test_device_mismatch_is_named():
    if not torch.cuda.is_available():
        pytest.skip("needs a second device type (CUDA) to mix devices")
    with pytest.raises(ValueError, match="one device"):
        kernels.attention(**qkv(key=torch.randn(B, H, N, D, device="cuda")))


def test_module_rejects_wrong_model_dim():
    module = kernels.MultiHeadAttention(d_model=32, num_heads=4)
    x = torch.randn(2, 5, 32)
    with pytest.raises(ValueError, match=r"key must have shape \(batch, seq, d_model=32\)"):
        module(x, torch.randn(2, 5, 16), x)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        kernels.MultiHeadAttention(d_model=30, num_heads=4)


# --- SDPA's argument domain, point by point: what torch accepts, ours accepts, with torch's result ---

BACKENDS = ("triton", "torch", "reference")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scale", [np.float32(0.25), np.float64(-0.5), torch.tensor(0.25), 2, True],
                         ids=["numpy-float32", "numpy-float64-negative", "0-d-tensor", "int", "bool"])
def test_any_real_scale_is_accepted_as_torch_does(scale, backend):
    q, k, v = (torch.randn(1, 2, 5, 16) for _ in range(3))
    with kernels.record_backends() as ran:
        out = kernels.attention(q, k, v, scale=scale, backend=backend)
    assert ran == [backend]
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, scale=float(scale)), atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_p_one_drops_every_weight_as_torch_does(backend):
    q, k, v = (torch.randn(1, 2, 5, 16, requires_grad=True) for _ in range(3))
    with kernels.record_backends() as ran:
        out = kernels.attention(q, k, v, dropout_p=1.0, backend=backend)
    assert ran == [backend]
    torch.testing.assert_close(out, torch.zeros_like(out), atol=0, rtol=0)
    out.sum().backward()
    for tensor in (q, k, v):
        torch.testing.assert_close(tensor.grad, torch.zeros_like(tensor), atol=0, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dropout_p", [np.float64(0.0), torch.tensor(0.0), 0], ids=["numpy", "0-d-tensor", "int"])
def test_any_real_dropout_p_is_accepted(dropout_p, backend):
    q, k, v = (torch.randn(1, 2, 5, 16) for _ in range(3))
    out = kernels.attention(q, k, v, dropout_p=dropout_p, backend=backend)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), atol=2e-5, rtol=2e-5)


EMPTY_SHAPES = {  # (query shape, key/value shape without the value head dim): what torch returns for each
    "no heads": ((1, 0, 3, 16), (1, 0, 3, 16)),
    "head dim 0": ((1, 2, 3, 0), (1, 2, 4, 0)),  # every score 0: the uniform average of the values
    "no batch": ((0, 2, 3, 16), (0, 2, 3, 16)),
    "no queries": ((1, 2, 0, 16), (1, 2, 3, 16)),
    "no keys": ((1, 2, 3, 16), (1, 2, 0, 16)),  # zeros
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shapes", EMPTY_SHAPES.values(), ids=EMPTY_SHAPES.keys())
def test_empty_inputs_give_what_torch_gives(shapes, backend):
    query_shape, key_shape = shapes
    q, k = torch.randn(query_shape), torch.randn(key_shape)
    v = torch.randn(*key_shape[:-1], 5)
    with kernels.record_backends() as ran:
        out = kernels.attention(q, k, v, backend=backend)
    assert ran == [backend]
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), atol=2e-5, rtol=2e-5)


def test_the_mask_shape_check_agrees_with_torch_broadcasting():
    """validation.broadcasts_to (tuple logic, for speed) against torch.broadcast_shapes, on every mask
    shape of rank 0 to 5 with sizes 0, 1, 2 and 3 against scores shapes with sizes 0, 1, 2 and 3."""
    import itertools

    from kernels.sdpa.validation import broadcasts_to

    def torch_says(shape, target):
        try:
            return torch.broadcast_shapes(shape, target) == torch.Size(target)
        except RuntimeError:
            return False

    sizes = (0, 1, 2, 3)
    targets = [target for rank in (3, 4) for target in itertools.product(sizes, repeat=rank)]
    shapes = [shape for rank in range(6) for shape in itertools.product(sizes, repeat=rank) if rank < 5 or
              shape[0] == 1]
    disagreements = [(shape, target) for target in targets[::7] for shape in shapes
                     if broadcasts_to(shape, target) != torch_says(shape, target)]
    assert not disagreements, disagreements[:10]


def test_the_fast_acceptance_never_passes_what_the_full_checks_refuse():
    """validation.plain_call_device (one frame, for host time) accepts a call only where the full
    per-argument checks accept it too: every rank-3/4 shape triple with sizes 1 to 2 (heads 0, 3, 4, 6
    too) with and without enable_gqa; every dtype and device triple on one shape; then, on one q/k/v,
    every mask (ranks 0 to 5, sizes 0 to 3, four dtypes, two devices) and every odd is_causal, dropout_p
    and scale, with and without a mask."""
    import itertools

    from kernels.sdpa.validation import check_every_attention_input, plain_call_device

    def full_accepts(*arguments):
        try:
            check_every_attention_input(*arguments)
        except (TypeError, ValueError):
            return False
        return True

    calls = []
    shapes = [shape for rank in (3, 4) for shape in itertools.product((1, 2), repeat=rank)]
    shapes += [(1, heads, 2, 2) for heads in (0, 3, 4, 6)]  # head counts that group, or not
    calls += [(*(torch.empty(shape, device="meta") for shape in triple), None, 0.0, False, None, enable_gqa)
              for triple in itertools.product(shapes, repeat=3) for enable_gqa in (False, True)]
    dtypes = (torch.float32, torch.float16, torch.int64, torch.float8_e4m3fn)
    calls += [(*(torch.empty(2, 2, 3, 4, dtype=dtype, device=device) for dtype, device in zip(kinds, places)),
               None, 0.0, False, None, False)
              for kinds in itertools.product(dtypes[:3], repeat=3) for places in itertools.product(("cpu", "meta"), repeat=3)]
    calls += [(*(torch.empty(2, 2, 3, 4, dtype=dtypes[3]),) * 3, None, 0.0, False, None, False)]
    calls += [(np.ones((2, 2, 3, 4)),) * 3 + (None, 0.0, False, None, False), ([[1.0]],) * 3 + (None, 0.0, False, None, False)]
    q, k, v = torch.empty(2, 3, 4, 8), torch.empty(2, 3, 5, 8), torch.empty(2, 3, 5, 8)
    mask_shapes = [shape for rank in range(6) for shape in itertools.product((0, 1, 2, 3, 4, 5), repeat=rank)
                   if rank < 5 or shape[0] == 1][::3]
    masks = [torch.empty(shape, dtype=dtype, device=device) for shape in mask_shapes
             for dtype in (torch.bool, torch.float32, torch.float16, torch.int32) for device in ("cpu", "meta")]
    masks += [np.ones((4, 5), dtype=bool), "causal"]
    calls += [(q, k, v, mask, 0.0, is_causal, None, False) for mask in masks for is_causal in (False, True)]
    for mask in (None, torch.ones(4, 5, dtype=torch.bool)):
        calls += [(q, k, v, mask, dropout_p, False, None, False)
                  for dropout_p in (0.0, 1.0, 0.5, 1.5, -0.1, 0, np.float64(0.1), torch.tensor(0.1), float("nan"))]
        calls += [(q, k, v, mask, 0.0, is_causal, None, False) for is_causal in (1, 0, None, np.bool_(True))]
        calls += [(q, k, v, mask, 0.0, False, scale, False)
                  for scale in (0.5, -2.0, 0.0, float("nan"), float("inf"), 2, np.float32(0.5), "0.5")]
    accepted = 0
    for call in calls:
        device = plain_call_device(*call)
        if device is not None:
            accepted += 1
            assert full_accepts(*call), [getattr(each, "shape", each) for each in call]
            assert device == call[0].device  # the caller's backend choice reads it
    assert 0 < accepted < len(calls)  # both outcomes occur
