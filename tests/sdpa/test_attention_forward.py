"""The fused forward kernel against the float64 reference (and so against torch SDPA)."""
import math

import pytest
import torch

import kernels
from kernels.sdpa.triton.forward import launch_forward
from kernels.testing import assert_attention_close
from support.devices import requires_cuda

DTYPES = [torch.float32, torch.float16, torch.bfloat16]

# (batch, query heads, key/value heads, query len, key len, head dim): lengths that cross tile
# edges unevenly, single rows, non-power-of-two head dims, GQA and MQA, Nq != Nk both ways.
AWKWARD_SHAPES = [
    (1, 1, 1, 1, 1, 16),
    (2, 3, 3, 17, 17, 24),
    (1, 2, 2, 63, 63, 80),
    (1, 4, 2, 129, 65, 96),
    (1, 4, 1, 33, 129, 64),
    (2, 2, 2, 1, 129, 32),
    (1, 1, 1, 64, 64, 256),
    (1, 2, 2, 40, 17, 128),
]


def make_qkv(batch, heads_q, heads_kv, n_q, n_k, head_dim, dtype, device, head_dim_v=None, magnitude=1.0):
    q = torch.randn(batch, heads_q, n_q, head_dim, dtype=dtype, device=device) * magnitude
    k = torch.randn(batch, heads_kv, n_k, head_dim, dtype=dtype, device=device) * magnitude
    v = torch.randn(batch, heads_kv, n_k, head_dim_v or head_dim, dtype=dtype, device=device)
    return q, k, v


def run_triton(q, k, v, **kwargs):
    with kernels.record_backends() as ran:
        out = kernels.attention(q, k, v, backend="triton", **kwargs)
    assert ran == ["triton"]
    return out


@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", AWKWARD_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_reference_on_awkward_shapes(shape, dtype, is_causal, device):
    batch, heads_q, heads_kv, n_q, n_k, head_dim = shape
    q, k, v = make_qkv(*shape, dtype, device)
    gqa = heads_q != heads_kv
    out = run_triton(q, k, v, is_causal=is_causal, enable_gqa=gqa)
    assert_attention_close(out, q, k, v, is_causal=is_causal, enable_gqa=gqa)


@requires_cuda
@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("head_dim", [64, 128])
def test_matches_reference_at_gpu_sizes(head_dim, dtype, is_causal, device):
    q, k, v = make_qkv(2, 8, 8, 2048, 2048, head_dim, dtype, device)
    out = run_triton(q, k, v, is_causal=is_causal)
    assert_attention_close(out, q, k, v, is_causal=is_causal)


def test_value_head_dim_may_differ_from_query_head_dim(device):
    q, k, v = make_qkv(2, 2, 2, 19, 23, 32, torch.float32, device, head_dim_v=48)
    assert_attention_close(run_triton(q, k, v), q, k, v)


def test_custom_scale(device):
    q, k, v = make_qkv(1, 2, 2, 21, 21, 40, torch.float16, device)
    assert_attention_close(run_triton(q, k, v, scale=0.37, is_causal=True), q, k, v, scale=0.37, is_causal=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_logits_do_not_overflow(dtype, device):
    q, k, v = make_qkv(1, 2, 2, 37, 45, 64, dtype, device, magnitude=12.0)
    out = run_triton(q, k, v)
    assert_attention_close(out, q, k, v)


def test_rank3_inputs_have_no_head_dim(device):
    q, k, v = (torch.randn(2, n, 24, device=device) for n in (13, 29, 29))
    mask = torch.rand(2, 13, 29, device=device) > 0.3
    out = run_triton(q, k, v, attn_mask=mask)
    assert_attention_close(out, q, k, v, attn_mask=mask)


@pytest.mark.parametrize("layout", ["bnhd_view", "strided_head_dim", "packed_qkv"])
def test_any_input_strides(layout, device):
    batch, heads, n, head_dim = 2, 3, 27, 32
    if layout == "bnhd_view":  # how models hold heads: (B, N, H, D) viewed as (B, H, N, D)
        q, k, v = (torch.randn(batch, n, heads, head_dim, device=device).transpose(1, 2) for _ in range(3))
    elif layout == "strided_head_dim":  # every other element of a wider tensor
        q, k, v = (torch.randn(batch, heads, n, 2 * head_dim, device=device)[..., ::2] for _ in range(3))
    else:  # q, k and v slices of one fused projection output (B, N, 3, H, D)
        qkv = torch.randn(batch, n, 3, heads, head_dim, device=device)
        q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
    assert not q.is_contiguous()
    assert_attention_close(run_triton(q, k, v, is_causal=True), q, k, v, is_causal=True)


def test_output_heads_merge_without_copy(device):
    q, k, v = make_qkv(2, 4, 4, 9, 9, 16, torch.float32, device)
    out = run_triton(q, k, v)
    merged = out.transpose(1, 2).reshape(2, 9, 64)
    assert merged.data_ptr() == out.data_ptr() and merged._base is not None


def _poisoned(shape, dtype, device, permute=None):
    buffer = torch.full(shape, float("nan"), dtype=dtype, device=device)
    return buffer if permute is None else buffer.permute(*permute)


@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("out_layout", ["contiguous", "bnhd"])
def test_kernel_writes_every_output_and_log_sum_exp(out_layout, is_causal, device):
    batch, heads, n_q, n_k, head_dim = 2, 3, 45, 31, 40
    q, k, v = make_qkv(batch, heads, heads, n_q, n_k, head_dim, torch.float32, device)
    if out_layout == "contiguous":
        out = _poisoned((batch, heads, n_q, head_dim), q.dtype, device)
    else:
        out = _poisoned((batch, n_q, heads, head_dim), q.dtype, device, permute=(0, 2, 1, 3))
    lse = _poisoned((batch, heads, n_q), torch.float32, device)
    scale = 1 / math.sqrt(head_dim)

    result, lse = launch_forward(q, k, v, None, is_causal, scale, out=out, lse=lse)

    assert result is out
    assert_attention_close(out, q, k, v, is_causal=is_causal)
    scores = (q.double() @ k.double().transpose(-2, -1)) * scale
    if is_causal:
        scores = scores.masked_fill(~torch.ones(n_q, n_k, dtype=torch.bool, device=device).tril(), float("-inf"))
    torch.testing.assert_close(lse.double(), scores.logsumexp(-1), atol=1e-5, rtol=1e-5)


def test_empty_key_sequence_gives_zeros(device):
    q, k, v = make_qkv(1, 2, 2, 5, 0, 16, torch.float32, device)
    out = run_triton(q, k, v)
    assert out.shape == (1, 2, 5, 16) and (out == 0).all()


def test_empty_query_sequence(device):
    q, k, v = make_qkv(1, 2, 2, 0, 7, 16, torch.float32, device)
    assert run_triton(q, k, v).shape == (1, 2, 0, 16)


def test_triton_backend_calls_no_torch_attention(device, monkeypatch):
    """The Triton path must not quietly hand the work to torch SDPA or the reference."""
    q, k, v = make_qkv(1, 2, 2, 17, 17, 32, torch.float32, device)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)

    def forbidden(*args, **kwargs):
        raise AssertionError("a torch attention implementation ran on the triton path")

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", forbidden)
    monkeypatch.setattr("reference.scaled_dot_product_attention", forbidden)
    out = kernels.attention(q, k, v, is_causal=True)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_float64_accumulates_in_float64(device):
    """fp64 inputs accumulate in fp64 (the softmax scale is an fp32 kernel argument on a GPU, so
    agreement is ~1e-7 there and ~1e-15 in the interpreter): far tighter than any fp32 path."""
    q, k, v = make_qkv(2, 4, 2, 37, 29, 40, torch.float64, device)
    mask = torch.rand(2, 1, 37, 29, device=device) < 0.8
    out = run_triton(q, k, v, attn_mask=mask, enable_gqa=True)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-6)
