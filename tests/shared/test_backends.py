"""Backend selection, the override, and the record that proves which implementation ran."""
import pytest
import torch

import kernels
import kernels.shared.backends
import reference
from support.devices import DEVICE


def small_inputs():
    return (torch.randn(1, 2, 11, 16, device=DEVICE) for _ in range(3))


def test_default_backend_runs_triton_on_cuda_or_in_the_interpreter():
    with kernels.record_backends() as ran:
        kernels.attention(*small_inputs())
    assert ran == ["triton"]
    if DEVICE == "cpu":
        assert kernels.shared.backends.INTERPRETING, "tests on CPU must run the kernels in Triton's interpreter"


@pytest.mark.parametrize("backend, implementation", [
    ("torch", torch.nn.functional.scaled_dot_product_attention),
    ("reference", reference.scaled_dot_product_attention),
])
def test_forced_backend_runs_that_implementation(backend, implementation):
    q, k, v = small_inputs()
    with kernels.record_backends() as ran:
        out = kernels.attention(q, k, v, is_causal=True, backend=backend)
    assert ran == [backend]
    torch.testing.assert_close(out, implementation(q, k, v, is_causal=True), atol=0, rtol=0)


def test_use_backend_context_nests_and_restores():
    with kernels.record_backends() as ran:
        with kernels.use_backend("reference"):
            kernels.attention(*small_inputs())
            with kernels.use_backend("torch"):
                kernels.attention(*small_inputs())
            kernels.attention(*small_inputs(), backend="triton")  # an explicit argument wins
        kernels.attention(*small_inputs())
    assert ran == ["reference", "torch", "triton", "triton"]


def test_use_backend_rejects_unknown_names():
    with pytest.raises(ValueError, match="backend must be one of"):
        with kernels.use_backend("flash"):
            pass


def test_cpu_without_interpreter_falls_back_to_torch_and_refuses_forced_triton(monkeypatch):
    monkeypatch.setattr(kernels.shared.backends, "INTERPRETING", False)
    q, k, v = (torch.randn(1, 2, 5, 8) for _ in range(3))
    with kernels.record_backends() as ran:
        kernels.attention(q, k, v)
    assert ran == ["torch"]
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
        kernels.attention(q, k, v, backend="triton")


def test_module_runs_triton():
    module = kernels.MultiHeadAttention(d_model=32, num_heads=2).to(DEVICE)
    x = torch.randn(2, 7, 32, device=DEVICE)
    with torch.no_grad(), kernels.record_backends() as ran:
        module(x, x, x)
    assert ran == ["triton"]


@pytest.mark.parametrize("backend", ["triton", "torch", "reference"])
def test_every_backend_takes_a_one_dimensional_key_mask(backend):
    q, k, v = small_inputs()
    keep = torch.rand(11, device=DEVICE) < 0.7
    keep[0] = True
    out = kernels.attention(q, k, v, attn_mask=keep, backend=backend)
    expected = reference.scaled_dot_product_attention(q, k, v, attn_mask=keep.expand(11, 11))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
