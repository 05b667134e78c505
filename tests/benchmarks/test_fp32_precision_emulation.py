"""The CPU emulation of float32 tensor-core dots behind the fp32 default (benchmarks/fp32_precision)."""
import pytest
import torch

from benchmarks.fp32_precision.emulation import MODES, attention, dot, tf32_rounded, tf32_truncated

ONE_ULP_TF32 = 2.0 ** -10  # TF32 keeps 10 mantissa bits


@pytest.mark.parametrize("x, truncated, rounded", [
    (1.0 + 2.0 ** -11, 1.0, 1.0 + ONE_ULP_TF32),  # a tie: rounded away from zero
    (1.0 + 2.0 ** -12, 1.0, 1.0),
    (-(1.0 + 3 * 2.0 ** -12), -1.0, -(1.0 + ONE_ULP_TF32)),
    (1.0 + ONE_ULP_TF32, 1.0 + ONE_ULP_TF32, 1.0 + ONE_ULP_TF32),  # already TF32
])
def test_tf32_conversions(x, truncated, rounded):
    value = torch.tensor([x], dtype=torch.float32)
    assert tf32_truncated(value).item() == truncated
    assert tf32_rounded(value).item() == rounded


def test_dot_modes_against_float64():
    a, b = torch.randn(64, 256), torch.randn(256, 32)
    exact = a.double() @ b.double()
    error = {mode: (dot(a, b, mode).double() - exact).abs().max().item() for mode in MODES}
    torch.testing.assert_close(dot(a, b, "ieee"), a @ b, atol=0, rtol=0)
    assert error["tf32"] > 100 * error["ieee"]  # 13 fewer mantissa bits per operand
    assert error["tf32x3"] < 4 * error["ieee"]  # float32's level
    with pytest.raises(ValueError, match="mode must be one of"):
        dot(a, b, "bf16")


def test_attention_in_each_mode_is_float32_attention():
    q, k, v = (torch.randn(1, 2, 64, 32) for _ in range(3))
    expected = torch.softmax(q @ k.transpose(-1, -2) * 32 ** -0.5, dim=-1) @ v
    torch.testing.assert_close(attention(q, k, v, "ieee"), expected)
    torch.testing.assert_close(attention(q, k, v, "tf32x3"), expected, atol=1e-5, rtol=1e-5)
