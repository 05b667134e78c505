"""Property test: any valid combination of shape, GQA, dtype, mask, causal and layout matches the
float64 reference. Hypothesis finds the combinations the hand-picked cases miss."""
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parity import assert_attention_matches
from test_attention_forward import run_triton
from conftest import DEVICE


@st.composite
def attention_cases(draw):
    batch = draw(st.integers(1, 2))
    heads_kv = draw(st.integers(1, 3))
    group = draw(st.sampled_from([1, 1, 2, 3]))
    n_q = draw(st.integers(1, 70))
    n_k = draw(st.integers(1, 70))
    head_dim = draw(st.sampled_from([16, 24, 32, 40, 64, 80, 96, 128]))
    dtype = draw(st.sampled_from([torch.float32, torch.float16, torch.bfloat16]))
    mask_kind = draw(st.sampled_from(["none", "causal", "bool", "additive"]))
    mask_shape = draw(st.sampled_from([(batch, 1, 1, n_k), (n_q, n_k), (batch, heads_kv * group, n_q, n_k)]))
    transposed = draw(st.booleans())  # (B, N, H, D) memory viewed as (B, H, N, D)
    return dict(batch=batch, heads_q=heads_kv * group, heads_kv=heads_kv, n_q=n_q, n_k=n_k,
                head_dim=head_dim, dtype=dtype, mask_kind=mask_kind, mask_shape=mask_shape, transposed=transposed)


def build(case, heads, n):
    shape = (case["batch"], n, heads, case["head_dim"]) if case["transposed"] else (case["batch"], heads, n, case["head_dim"])
    tensor = torch.randn(shape, device=DEVICE).to(case["dtype"])
    return tensor.transpose(1, 2) if case["transposed"] else tensor


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=attention_cases())
def test_any_valid_input_matches_reference(case):
    q = build(case, case["heads_q"], case["n_q"])
    k, v = build(case, case["heads_kv"], case["n_k"]), build(case, case["heads_kv"], case["n_k"])
    kwargs = dict(enable_gqa=case["heads_q"] != case["heads_kv"], is_causal=case["mask_kind"] == "causal")
    if case["mask_kind"] == "bool":
        kwargs["attn_mask"] = torch.rand(case["mask_shape"], device=DEVICE) < 0.75  # some rows fully masked
    elif case["mask_kind"] == "additive":
        kwargs["attn_mask"] = torch.randn(case["mask_shape"], device=DEVICE).to(case["dtype"])
    assert_attention_matches(run_triton(q, k, v, **kwargs), q, k, v, **kwargs)
