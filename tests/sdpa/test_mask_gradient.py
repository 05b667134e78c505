"""The gradient of a float attn_mask (a trainable bias: T5's relative position bias, a learned
ALiBi) on the Triton backend: the dQ kernel stores dS and autograd's `expand` backward sums it down to
the mask's own shape (kernels/sdpa/custom_ops.py). Against float64 autograd through the reference."""
import math

import pytest
import torch

from kernels.sdpa.triton.backward import launch_backward
from kernels.sdpa.triton.forward import launch_forward
from kernels.testing import assert_parity
from test_attention_backward import gradient_tolerance, reference_gradients, triton_gradients
from test_attention_forward import make_qkv


# name: (batch, query heads, kv heads, queries, keys, head dim; bias shape; dtype; bias dtype), heads None:
# rank-3 inputs. More: every float mask of test_attention_backward (broadcast shapes in float16 with
# -inf entries) and test_head_dim_chunks (float32 past d128); dropout: test_variants_triton's replay.
CASES = {
    "rank3-2d-bias": ((3, None, None, 19, 33, 24), (19, 33), torch.float32, torch.float32),
    "t5-bias-gqa": ((2, 4, 2, 21, 37, 32), (1, 4, 21, 37), torch.float32, torch.float32),
    "key-bias-float32-of-float16": ((2, 2, 2, 17, 40, 16), (2, 1, 1, 40), torch.float16, torch.float32),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bias_gradient_matches_the_reference(case, device):
    """dq, dk, dv and the bias' gradient (its own shape and dtype) within the pass rule; -inf entries
    (weight 0) get exactly 0."""
    (batch, heads_q, heads_kv, n_q, n_k, head_dim), bias_shape, dtype, bias_dtype = CASES[case]
    if heads_q is None:
        q, k, v = (t[:, 0] for t in make_qkv(batch, 1, 1, n_q, n_k, head_dim, dtype, device))
    else:
        q, k, v = make_qkv(batch, heads_q, heads_kv, n_q, n_k, head_dim, dtype, device)
    bias = torch.randn(bias_shape, dtype=bias_dtype, device=device)
    bias.view(-1)[[3, 7]] = float("-inf")
    dout = torch.randn_like(q)
    kwargs = dict(enable_gqa=q.dim() == 4 and q.size(1) != k.size(1))
    ours = triton_gradients(q, k, v, dout, mask_grad=True, attn_mask=bias, **kwargs)
    exact = reference_gradients(q.double(), k.double(), v.double(), dout.double(), mask_grad=True,
                                attn_mask=bias.double(), **kwargs)
    plain = reference_gradients(q, k, v, dout, mask_grad=True, attn_mask=bias, **kwargs)
    assert ours[3].shape == bias.shape and ours[3].dtype == bias_dtype
    assert (ours[3].view(-1)[[3, 7]] == 0).all()
    for name, got, want, baseline in zip(("dq", "dk", "dv", "dbias"), ours, exact, plain):
        try:
            assert_parity(got, want, baseline, tolerance=gradient_tolerance(dtype, want))
        except AssertionError as failure:
            raise AssertionError(f"{name}: {failure}") from None


def test_causal_kernel_writes_every_mask_gradient_element(device):
    """The launcher takes causality and a float mask together (kernels.attention refuses the pair, as
    torch does): key tiles above the diagonal, which the dQ kernel skips, get zeros, and every element
    of a NaN-poisoned gradient is written."""
    q, k, v = make_qkv(2, 2, 1, 45, 45, 40, torch.float32, device)
    bias = torch.randn(2, 1, 45, 45, device=device)
    mask = bias.expand(2, 2, 45, 45)
    scale = 1 / math.sqrt(40)
    dout = torch.randn_like(q)
    lse = torch.empty(2, 2, 45, device=device)
    out, lse = launch_forward(q, k, v, mask, True, scale, lse=lse)
    mask_grad = torch.full((2, 2, 45, 45), float("nan"), device=device)
    launch_backward(q, k, v, out, lse, dout, mask, True, scale, mask_grad=mask_grad)
    exact = reference_gradients(q.double(), k.double(), v.double(), dout.double(), mask_grad=True,
                                attn_mask=mask.double(), is_causal=True, enable_gqa=True)
    assert (mask_grad.triu(1) == 0).all()
    torch.testing.assert_close(mask_grad.double(), exact[3], atol=1e-5, rtol=1e-5)
