"""The fused embedding (lookup * sqrt(d_model) + sinusoidal encoding + dropout) and its weight gradient."""
import math

import pytest
import torch
from torch import nn

import kernels
from support.devices import DEVICE
from kernels.positional.triton.encoding import Positions, launch_positional_encoding
from kernels.shared.dropout import Dropout
from kernels.positional.functional import sinusoidal_embedding
from kernels.nn.positional import SinusoidalEmbedding
from kernels.testing import assert_parity
from support.positional_parity import course_table_rows, encoding_tolerance, float64_encoding

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def run_triton(token_ids, weight, **kwargs):
    with kernels.record_backends() as ran:
        out = sinusoidal_embedding(token_ids, weight, backend="triton", **kwargs)
    assert ran == ["triton"]
    return out


def assert_embeds(out, token_ids, weight, positions):
    """out == weight[ids] * sqrt(d) + pe[positions], judged against embedding, scaling and the
    course's float32 table added in weight's dtype."""
    d_model = weight.size(1)
    scale = math.sqrt(d_model)
    exact = weight.double()[token_ids] * scale + float64_encoding(positions, d_model)
    baseline = weight[token_ids] * scale + course_table_rows(positions, d_model, weight.dtype)
    assert_parity(out, exact, baseline, tolerance=encoding_tolerance(weight.dtype, positions))


def positions_of(seq_len, offset=0):
    return torch.arange(offset, offset + seq_len, device=DEVICE)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch, seq_len, vocab, d_model", [(1, 1, 3, 16), (2, 17, 50, 24), (3, 5, 7, 33)])
def test_matches_float64_lookup_scale_and_encoding(batch, seq_len, vocab, d_model, dtype, device):
    weight = torch.randn(vocab, d_model, dtype=dtype, device=device)
    token_ids = torch.randint(0, vocab, (batch, seq_len), device=device)
    assert_embeds(run_triton(token_ids, weight), token_ids, weight, positions_of(seq_len))


def test_offset_position_ids_and_custom_scale(device):
    weight = torch.randn(30, 20, device=device)
    token_ids = torch.randint(0, 30, (2, 6), device=device, dtype=torch.int32)
    assert_embeds(run_triton(token_ids, weight, position_offset=500), token_ids, weight, positions_of(6, 500))
    position_ids = torch.tensor([[0, 0, 0, 1, 2, 3], [0, 1, 2, 3, 4, 5]], device=device)
    assert_embeds(run_triton(token_ids, weight, position_ids=position_ids), token_ids, weight, position_ids)
    unscaled = run_triton(token_ids, weight, scale=1.0)
    torch.testing.assert_close(unscaled, weight[token_ids] + float64_encoding(positions_of(6), 20).float())


@pytest.mark.parametrize("layout", ["transposed_ids", "strided_weight_columns"])
def test_any_strides(layout, device):
    weight = torch.randn(40, 2 * 18, device=device)
    token_ids = torch.randint(0, 40, (9, 3), device=device)
    if layout == "transposed_ids":
        token_ids, weight = token_ids.t(), weight[:, :18]
    else:
        token_ids, weight = token_ids.t().contiguous(), weight[:, ::2]
    assert not (token_ids.is_contiguous() and weight.is_contiguous())
    assert_embeds(run_triton(token_ids, weight), token_ids, weight, positions_of(9))


def test_kernel_writes_every_output_element(device):
    weight = torch.randn(11, 33, device=device)
    token_ids = torch.randint(0, 11, (2, 13), device=device)
    out = torch.full((2, 13, 33), float("nan"), device=device)
    launch_positional_encoding(weight, out, Positions(), math.sqrt(33), Dropout(), token_ids=token_ids)
    assert_embeds(out, token_ids, weight, positions_of(13))


def test_out_of_range_ids_read_nothing_and_give_nan_rows(device):
    weight = torch.randn(5, 16, device=device)
    token_ids = torch.tensor([[0, 5, 4, -1]], device=device)
    out = torch.zeros(1, 4, 16, device=device)
    launch_positional_encoding(weight, out, Positions(), 4.0, Dropout(), token_ids=token_ids)
    assert torch.isnan(out[0, [1, 3]]).all() and torch.isfinite(out[0, [0, 2]]).all()


@pytest.mark.parametrize("dropout_p", [0.0, 0.25])
def test_weight_gradient_scatters_scaled_masked_rows(dropout_p, device):
    weight = torch.randn(6, 24, device=device, requires_grad=True)
    token_ids = torch.tensor([[1, 3, 1, 5, 1], [0, 3, 3, 2, 1]], device=device)  # repeated ids accumulate
    grad_out = torch.randn(2, 5, 24, device=device)
    torch.manual_seed(11)
    out = run_triton(token_ids, weight, dropout_p=dropout_p)
    out.backward(grad_out)
    keep = (out != 0).double() if dropout_p else 1.0
    rows = grad_out.double() * keep * math.sqrt(24) / (1 - dropout_p)
    expected = torch.zeros(6, 24, dtype=torch.float64, device=device)
    expected.index_add_(0, token_ids.flatten(), rows.view(-1, 24))
    torch.testing.assert_close(weight.grad.double(), expected, atol=1e-5, rtol=1e-5)


def test_weight_gradient_accumulates_in_float32_for_bfloat16(device):
    """1000 rows of 0.001 into one: added one at a time in bfloat16 (CUDA's index_add_ atomics) the
    sum stalls at 0.5, where half an ulp exceeds 0.001. (The CPU's index_add_ accumulates in float32
    itself, so on the CPU this only checks the sum.)"""
    weight = torch.randn(2, 16, device=device, dtype=torch.bfloat16, requires_grad=True)
    token_ids = torch.zeros(1, 1000, dtype=torch.int64, device=device)
    grad_out = torch.full((1, 1000, 16), 0.001, device=device, dtype=torch.bfloat16)
    run_triton(token_ids, weight, scale=1.0).backward(grad_out)
    exact = 1000 * grad_out[0, 0].double()
    torch.testing.assert_close(weight.grad[0].double(), exact, atol=0, rtol=0.01)
    assert (weight.grad[1] == 0).all()


def test_dropout_follows_torch_manual_seed(device):
    weight = torch.randn(20, 32, device=device)
    token_ids = torch.randint(0, 20, (2, 16), device=device)

    def run(seed):
        torch.manual_seed(seed)
        return run_triton(token_ids, weight, dropout_p=0.5)

    first, again, other = run(3), run(3), run(4)
    torch.testing.assert_close(first, again, atol=0, rtol=0)
    assert ((first != 0) != (other != 0)).float().mean() > 0.3
    kept = first != 0
    n = kept.numel()
    assert abs(kept.sum().item() - n / 2) <= 6 * math.sqrt(n / 4)
    undropped = run_triton(token_ids, weight)
    torch.testing.assert_close(first[kept], 2 * undropped[kept], atol=1e-5, rtol=1e-6)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(weight=torch.randn(5)), ValueError, r"weight must have rank 2 \(vocab_size, d_model\)"),
    (dict(weight=torch.randint(0, 3, (5, 8))), TypeError, "weight must be a floating-point tensor"),
    (dict(token_ids=torch.zeros(2, 3)), TypeError, "token_ids must be an int32 or int64 tensor"),
    (dict(token_ids=torch.zeros(6, dtype=torch.int64)), ValueError, r"token_ids must have rank 2 \(batch, seq\)"),
    (dict(token_ids=torch.tensor([[0, 5, 1]])), IndexError, r"token_ids must lie in \[0, vocab_size=5\)"),
    (dict(token_ids=torch.tensor([[0, -1, 1]])), IndexError, r"got values in \[-1, 1\]"),
    (dict(padding_idx=5), ValueError, r"padding_idx must be None or an int in \[0, 5\)"),
    (dict(position_offset=-3), ValueError, "position_offset must be a non-negative int"),
    (dict(position_ids=torch.zeros(2, 2, dtype=torch.int64)), ValueError, r"position_ids must have shape \(2, 3\)"),
    (dict(dropout_p=1.5), ValueError, r"dropout_p must be a float in \[0, 1\)"),
    (dict(scale=float("nan")), ValueError, "scale must be a finite float"),
])
def test_bad_arguments_are_named(kwargs, error, message):
    kwargs = {"token_ids": torch.zeros(2, 3, dtype=torch.int64), "weight": torch.randn(5, 8), **kwargs}
    with pytest.raises(error, match=message):
        sinusoidal_embedding(**kwargs)


def test_triton_path_calls_no_torch_fallback(device, monkeypatch):
    weight = torch.randn(9, 24, device=device)
    token_ids = torch.randint(0, 9, (2, 7), device=device)
    expected = sinusoidal_embedding(token_ids, weight, backend="torch")

    def forbidden(*args, **kwargs):
        raise AssertionError("a PyTorch implementation ran on the triton path")

    for name in ("sinusoid", "reference_table_rows", "encode", "sinusoidal_embedding"):
        monkeypatch.setattr(f"kernels.positional.torch_fallback.{name}", forbidden)
    monkeypatch.setattr("torch.nn.functional.embedding", forbidden)
    torch.testing.assert_close(run_triton(token_ids, weight), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("backend", ["torch", "reference"])
def test_pytorch_backends_have_the_same_semantics(backend, device):
    weight = torch.randn(9, 20, device=device, requires_grad=True)
    token_ids = torch.tensor([[1, 2, 8], [8, 8, 0]], device=device)
    with kernels.record_backends() as ran:
        out = sinusoidal_embedding(token_ids, weight, position_offset=4, padding_idx=8, backend=backend)
    assert ran == [backend]
    assert_embeds(out, token_ids, weight.detach(), positions_of(3, 4))
    out.sum().backward()
    counts = torch.bincount(token_ids.flatten(), minlength=9).float()
    counts[8] = 0
    torch.testing.assert_close(weight.grad, counts[:, None].expand(9, 20) * math.sqrt(20))


class TestSinusoidalEmbeddingModule:
    def test_padding_row_starts_at_zero_and_gets_no_gradient(self, device):
        module = SinusoidalEmbedding(12, 16, padding_idx=-1).to(device)
        assert module.padding_idx == 11 and (module.weight[11] == 0).all()
        token_ids = torch.tensor([[11, 11, 3, 4]], device=device)
        with kernels.record_backends() as ran:
            out = module(token_ids)
        assert ran == ["triton"]
        torch.testing.assert_close(out[0, 0], float64_encoding(torch.tensor(0), 16).float(), atol=1e-6, rtol=0)
        out.sum().backward()
        assert (module.weight.grad[11] == 0).all() and (module.weight.grad[3] != 0).all()

    def test_loads_an_nn_embedding_state_dict_and_matches_it(self, device):
        embedding = nn.Embedding(25, 32).to(device)
        module = SinusoidalEmbedding(25, 32).to(device)
        module.load_state_dict(embedding.state_dict())
        token_ids = torch.randint(0, 25, (2, 10), device=device)
        with torch.no_grad():
            assert_embeds(module(token_ids, position_offset=3), token_ids, embedding.weight, positions_of(10, 3))

    def test_dropout_in_training_only(self, device):
        module = SinusoidalEmbedding(10, 16, dropout=0.5).to(device)
        token_ids = torch.randint(0, 10, (2, 8), device=device)
        assert (module(token_ids) == 0).any()
        module.eval()
        with torch.no_grad():
            assert_embeds(module(token_ids), token_ids, module.weight, positions_of(8))

    def test_bad_constructor_arguments(self):
        with pytest.raises(ValueError, match="padding_idx must be in"):
            SinusoidalEmbedding(4, 8, padding_idx=4)
        with pytest.raises(ValueError, match=r"dropout must be a float in \[0, 1\)"):
            SinusoidalEmbedding(4, 8, dropout=-0.5)
