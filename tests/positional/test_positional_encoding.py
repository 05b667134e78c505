"""The fused sinusoidal positional encoding against the float64 definition and the course's module."""
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kernels
import kernels.shared.backends
import reference
from support.devices import DEVICE
from kernels.positional.triton.encoding import Positions, launch_positional_encoding
from kernels.shared.dropout import Dropout
from kernels.positional.functional import add_positional_encoding
from kernels.nn.positional import PositionalEncoder
from kernels.testing import assert_parity
from reference.positional_encoding import sinusoidal_table
from support.positional_parity import angle_allowance, course_table_rows, encoding_tolerance, float64_encoding

DTYPES = [torch.float32, torch.float16, torch.bfloat16]

# (batch, seq, d_model): single rows and columns, lengths and widths that cross the interpreter's
# 4 x 16 tiles unevenly, odd d_model (the last sin column has no cos partner).
SHAPES = [(1, 1, 16), (2, 17, 24), (3, 9, 33), (1, 6, 1), (2, 5, 7), (1, 3, 64)]


def run_triton(x, **kwargs):
    with kernels.record_backends() as ran:
        out = add_positional_encoding(x, backend="triton", **kwargs)
    assert ran == ["triton"]
    return out


def positions_of(seq_len, offset=0):
    return torch.arange(offset, offset + seq_len, device=DEVICE)


def assert_encodes(out, x, positions, scale=1.0):
    """out == x * scale + pe[positions] by the pass rule; `positions` is (N,) or (B, N). The plain
    computation is the course's: a float32 table, cast to x's dtype, added to x."""
    d_model = x.size(-1)
    exact = x.double() * scale + float64_encoding(positions, d_model)
    baseline = x * scale + course_table_rows(positions, d_model, x.dtype)
    assert_parity(out, exact, baseline, tolerance=encoding_tolerance(x.dtype, positions))


def test_float64_definition_is_the_reference_table():
    table = sinusoidal_table(300, 33, dtype=torch.float64)
    torch.testing.assert_close(float64_encoding(torch.arange(300), 33), table, atol=1e-12, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_float64_encoding(shape, dtype, device):
    x = torch.randn(shape, dtype=dtype, device=device)
    assert_encodes(run_triton(x), x, positions_of(shape[1]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_the_course_module(dtype, device):
    course = reference.PositionalEncoder(48, max_seq_length=64).to(device)
    x = torch.randn(2, 40, 48, dtype=dtype, device=device)
    exact = course.double()(x.double())
    assert_parity(run_triton(x), exact, baseline=course.to(dtype)(x))


def test_odd_d_model_ends_with_an_unpaired_sin_column(device):
    x = torch.zeros(1, 9, 5, device=device)
    out = run_triton(x, position_offset=3).double()
    positions = torch.arange(3, 12, device=device).double()
    torch.testing.assert_close(out[0, :, 4], torch.sin(positions / 10000 ** (4 / 5)), atol=1e-6, rtol=0)
    torch.testing.assert_close(out[0, :, 3], torch.cos(positions / 10000 ** (2 / 5)), atol=1e-6, rtol=0)


@pytest.mark.parametrize("offset, seq_len", [(1, 1), (37, 1), (1000, 19), (123456, 5)])
def test_position_offset_is_the_decode_step(offset, seq_len, device):
    x = torch.randn(2, seq_len, 40, device=device)
    assert_encodes(run_triton(x, position_offset=offset), x, positions_of(seq_len, offset))


def test_decoding_one_step_at_a_time_equals_the_whole_sequence(device):
    x = torch.randn(2, 11, 24, device=device)
    whole = run_triton(x)
    steps = torch.cat([run_triton(x[:, t : t + 1], position_offset=t) for t in range(11)], dim=1)
    torch.testing.assert_close(steps, whole, atol=0, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_position_ids_of_a_left_padded_batch(dtype, device):
    padding = torch.tensor([0, 3, 7], device=device)  # left padding per row; pads get position 0
    steps = torch.arange(12, device=device)
    position_ids = (steps - padding[:, None]).clamp(min=0)
    x = torch.randn(3, 12, 20, dtype=dtype, device=device)
    assert_encodes(run_triton(x, position_ids=position_ids), x, position_ids)


def test_position_ids_shared_by_the_batch_broadcast(device):
    position_ids = torch.tensor([[5, 1, 900, 2, 2, 60000]], device=device, dtype=torch.int32)
    x = torch.randn(3, 6, 18, device=device)
    assert_encodes(run_triton(x, position_ids=position_ids), x, position_ids.expand(3, 6))


@pytest.mark.parametrize("dtype", DTYPES)
def test_scale_by_sqrt_d_model(dtype, device):
    x = torch.randn(2, 13, 36, dtype=dtype, device=device)
    scale = math.sqrt(36)
    assert_encodes(run_triton(x, scale=scale), x, positions_of(13), scale=scale)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 20), st.integers(1, 40)),
    dtype=st.sampled_from(DTYPES),
    offset=st.one_of(st.integers(0, 64), st.integers(0, 200_000)),
    use_position_ids=st.booleans(),
    seq_first=st.booleans(),
    scaled=st.booleans(),
)
def test_any_valid_input_matches_float64(shape, dtype, offset, use_position_ids, seq_first, scaled):
    """Hypothesis over shapes, dtypes, positions (offset or random ids), layouts and scaling."""
    batch, seq_len, d_model = shape
    x = torch.randn(shape, device=DEVICE).to(dtype)
    if seq_first:  # (N, B, d) memory seen as (B, N, d)
        x = x.transpose(0, 1).contiguous().transpose(0, 1)
    scale = math.sqrt(d_model) if scaled else 1.0
    if use_position_ids:
        positions = torch.randint(0, offset + 1, (batch, seq_len), device=DEVICE)
        out = run_triton(x, position_ids=positions, scale=scale)
    else:
        positions = positions_of(seq_len, offset)
        out = run_triton(x, position_offset=offset, scale=scale)
    assert_encodes(out, x, positions, scale=scale)


@pytest.mark.parametrize("layout", ["seq_first_view", "strided_columns", "expanded_batch"])
def test_any_input_strides(layout, device):
    if layout == "seq_first_view":  # (N, B, d) memory seen as (B, N, d)
        x = torch.randn(14, 3, 24, device=device).transpose(0, 1)
    elif layout == "strided_columns":
        x = torch.randn(2, 9, 2 * 21, device=device)[..., ::2]
    else:  # one row broadcast over the batch: stride 0
        x = torch.randn(1, 9, 21, device=device).expand(4, 9, 21)
    assert not x.is_contiguous()
    assert_encodes(run_triton(x), x, positions_of(x.size(1)))


def test_inplace_overwrites_and_returns_x(device):
    x = torch.randn(20, 2, 24, device=device).transpose(0, 1)  # in place through the strides too
    expected = run_triton(x.clone())
    out = run_triton(x, inplace=True)
    assert out.data_ptr() == x.data_ptr() and out.stride() == x.stride()
    torch.testing.assert_close(x, expected, atol=0, rtol=0)


@pytest.mark.parametrize("out_layout", ["contiguous", "transposed"])
@pytest.mark.parametrize("dropout_p", [0.0, 0.4])
def test_kernel_writes_every_output_element(out_layout, dropout_p, device):
    x = torch.randn(3, 17, 33, device=device)
    if out_layout == "contiguous":
        out = torch.full_like(x, float("nan"))
    else:
        out = torch.full((17, 3, 33), float("nan"), device=device).transpose(0, 1)
    result = launch_positional_encoding(x, out, Positions(), 1.0, Dropout(dropout_p, seed=7))
    assert result is out and torch.isfinite(out).all()
    if dropout_p == 0.0:
        assert_encodes(out, x, positions_of(17))


def test_empty_inputs(device):
    assert run_triton(torch.randn(2, 0, 16, device=device)).shape == (2, 0, 16)
    assert run_triton(torch.randn(0, 5, 16, device=device)).shape == (0, 5, 16)


def dropout_run(x, p, seed, **kwargs):
    torch.manual_seed(seed)
    return run_triton(x, dropout_p=p, **kwargs)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_keeps_each_element_with_probability_1_minus_p(p, device):
    x = torch.randn(2, 32, 64, device=device)
    out = dropout_run(x, p, seed=int(torch.randint(1 << 30, ())))
    kept = out != 0
    n = kept.numel()
    bound = 6 * math.sqrt(n * p * (1 - p))  # six binomial standard deviations
    assert abs(kept.sum().item() - n * (1 - p)) <= bound
    undropped = run_triton(x)
    torch.testing.assert_close(out[kept], undropped[kept] / (1 - p), atol=1e-6, rtol=1e-6)


def test_dropout_mask_has_no_repeated_rows_or_columns(device):
    """Independent draws at p = 1/2: two of the 64 rows (or columns) agree everywhere with probability
    2**-64. A Philox draw reused for several columns, a counter that ignores the row, or one that
    restarts in every column tile would repeat them."""
    out = dropout_run(torch.randn(2, 32, 64, device=device), 0.5, seed=int(torch.randint(1 << 30, ())))
    kept = (out != 0).view(64, 64)
    assert torch.unique(kept, dim=0).size(0) == 64 and torch.unique(kept, dim=1).size(1) == 64


def test_dropout_mask_follows_torch_manual_seed(device):
    x = torch.randn(2, 19, 40, device=device)
    first, again, other = (dropout_run(x, 0.5, seed) for seed in (1234, 1234, 4321))
    torch.testing.assert_close(first, again, atol=0, rtol=0)
    assert ((first != 0) != (other != 0)).float().mean() > 0.3


def test_dropout_mask_does_not_depend_on_layout(device):
    x = torch.randn(3, 10, 24, device=device)
    seq_first = x.transpose(0, 1).contiguous().transpose(0, 1)
    torch.testing.assert_close(dropout_run(x, 0.3, 99), dropout_run(seq_first, 0.3, 99), atol=0, rtol=0)


@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_gradient_is_scaled_and_masked_like_the_output(scale, dropout_p, device):
    x = torch.randn(2, 17, 24, device=device, requires_grad=True)
    grad_out = torch.randn(2, 17, 24, device=device)
    out = dropout_run(x, dropout_p, seed=5, scale=scale)
    out.backward(grad_out)
    keep = (out != 0).float() if dropout_p else torch.ones_like(out)
    expected = grad_out * keep * scale / (1 - dropout_p)  # d(x * scale + pe)/dx, through the same mask
    torch.testing.assert_close(x.grad, expected, atol=1e-6, rtol=1e-6)


def test_gradient_through_an_inplace_encoding(device):
    x = torch.randn(2, 9, 16, device=device, requires_grad=True)
    hidden = x * 3.0  # a non-leaf, so it may be overwritten
    run_triton(hidden, inplace=True, scale=2.0).sum().backward()
    torch.testing.assert_close(x.grad, torch.full_like(x, 6.0), atol=0, rtol=0)


# Float32 positions and angles: the error grows with the position, like a float32 table's, within a
# few float32 ulps of the largest angle: far under anything a wrong formula would give.
@pytest.mark.parametrize("start", [0, 4096, 100_000, 1_000_000])
@pytest.mark.parametrize("d_model", [33, 64])
def test_precision_at_large_positions(start, d_model, device):
    positions = positions_of(8, start).view(1, 8)
    out = run_triton(torch.zeros(1, 8, d_model, device=device), position_ids=positions)
    error = (out.double() - float64_encoding(positions, d_model)).abs().max().item()
    assert error <= angle_allowance(positions) + 1e-6, f"error {error:.3g} at positions from {start}"


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(x=[[1.0]]), TypeError, "x must be a torch.Tensor"),
    (dict(x=torch.randn(4, 8)), ValueError, r"x must have rank 3 \(batch, seq, d_model\)"),
    (dict(x=torch.randint(0, 5, (2, 4, 8))), TypeError, "x must be a floating-point tensor"),
    (dict(position_offset=-1), ValueError, "position_offset must be a non-negative int"),
    (dict(position_offset=1.5), ValueError, "position_offset must be a non-negative int"),
    (dict(position_offset=True), ValueError, "position_offset must be a non-negative int"),
    (dict(position_ids=torch.zeros(2, 4, dtype=torch.int64), position_offset=2), ValueError, "not both"),
    (dict(position_ids=torch.zeros(2, 4)), TypeError, "position_ids must be an int32 or int64 tensor"),
    (dict(position_ids=torch.zeros(4, dtype=torch.int64)), ValueError, "position_ids must have rank 2"),
    (dict(position_ids=torch.zeros(2, 5, dtype=torch.int64)), ValueError, r"position_ids must have shape \(2, 4\)"),
    (dict(position_ids=torch.zeros(3, 4, dtype=torch.int64)), ValueError, r"position_ids must have shape \(2, 4\)"),
    (dict(position_ids=[[0, 1, 2, 3]]), TypeError, "position_ids must be a torch.Tensor"),
    (dict(scale=float("inf")), ValueError, "scale must be a finite float"),
    (dict(scale="2"), ValueError, "scale must be a finite float"),
    (dict(dropout_p=1.0), ValueError, r"dropout_p must be a float in \[0, 1\)"),
    (dict(dropout_p=-0.1), ValueError, r"dropout_p must be a float in \[0, 1\)"),
    (dict(inplace=1), TypeError, "inplace must be a bool"),
    (dict(x=torch.randn(1, 4, 8).expand(2, 4, 8), inplace=True), ValueError, r"without broadcast \(stride 0\) dims"),
    (dict(backend="cuda"), ValueError, "backend must be one of"),
])
def test_bad_arguments_are_named(kwargs, error, message):
    kwargs = {"x": torch.randn(2, 4, 8), **kwargs}
    with pytest.raises(error, match=message):
        add_positional_encoding(**kwargs)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(x=torch.randn(2, 4, 8, dtype=torch.float64)), TypeError, "float16, bfloat16 and float32"),
    (dict(x=torch.randn(1, 4, 8), position_offset=2**24 - 3), ValueError, r"exceeds 2\*\*24"),
])
def test_triton_limits_are_named(kwargs, error, message):
    with pytest.raises(error, match=message):
        add_positional_encoding(**kwargs, backend="triton")


def test_triton_path_calls_no_torch_fallback(device, monkeypatch):
    x = torch.randn(2, 9, 24, device=device)
    expected = add_positional_encoding(x, backend="torch")

    def forbidden(*args, **kwargs):
        raise AssertionError("a PyTorch implementation ran on the triton path")

    for name in ("sinusoid", "reference_table_rows", "encode", "add_positional_encoding"):
        monkeypatch.setattr(f"kernels.positional.torch_fallback.{name}", forbidden)
    monkeypatch.setattr("kernels.positional.torch_fallback.ENCODINGS", {"torch": forbidden, "reference": forbidden})
    torch.testing.assert_close(run_triton(x), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("backend", ["torch", "reference"])
def test_pytorch_backends_have_the_same_semantics(backend, device):
    x = torch.randn(2, 7, 21, device=device, requires_grad=True)
    position_ids = torch.tensor([[0, 0, 1, 2, 3, 4, 5], [3, 4, 5, 6, 7, 8, 9]], device=device)
    with kernels.record_backends() as ran:
        out = add_positional_encoding(x, position_ids=position_ids, scale=2.0, backend=backend)
    assert ran == [backend]
    assert_encodes(out, x.detach(), position_ids, scale=2.0)
    out.sum().backward()
    torch.testing.assert_close(x.grad, torch.full_like(x, 2.0))


def test_cpu_without_interpreter_falls_back_to_torch(monkeypatch):
    monkeypatch.setattr(kernels.shared.backends, "INTERPRETING", False)
    x = torch.randn(2, 5, 8)
    with kernels.record_backends() as ran:
        add_positional_encoding(x)
    assert ran == ["torch"]
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
        add_positional_encoding(x, backend="triton")


class TestPositionalEncoderModule:
    def test_state_dicts_load_both_ways(self):
        course, fused = reference.PositionalEncoder(32, 100), PositionalEncoder(32, 100)
        fused.load_state_dict(course.state_dict())
        course.load_state_dict(fused.state_dict())
        assert fused.pe.shape == (1, 100, 32)

    def test_same_output_as_the_course_module(self, device):
        course = reference.PositionalEncoder(40, 64).to(device)
        fused = PositionalEncoder(40, 64).to(device)
        x = torch.randn(3, 33, 40, device=device)
        with kernels.record_backends() as ran:
            out = fused(x)
        assert ran == ["triton"]
        baseline = course(x)
        assert_parity(out, course.double()(x.double()), baseline=baseline)

    def test_sequences_longer_than_max_seq_length_work(self, device):
        fused = PositionalEncoder(16, max_seq_length=8).to(device)
        x = torch.randn(1, 21, 16, device=device)
        assert_encodes(fused(x), x, positions_of(21))
        with pytest.raises(ValueError, match="exceeds max_seq_length"):
            reference.PositionalEncoder(16, max_seq_length=8)(x)

    def test_options(self, device):
        fused = PositionalEncoder(24, dropout=0.5, scale_input=True).to(device)
        x = torch.randn(2, 6, 24, device=device)
        position_ids = torch.tensor([[0, 0, 0, 1, 2, 3]], device=device)
        fused.eval()
        assert_encodes(fused(x, position_ids=position_ids), x, position_ids.expand(2, 6), scale=math.sqrt(24))
        assert_encodes(fused(x, position_offset=9), x, positions_of(6, 9), scale=math.sqrt(24))
        fused.train()
        assert (fused(x) == 0).any()

    def test_wrong_d_model_is_named(self):
        with pytest.raises(ValueError, match=r"x must have shape \(batch, seq, d_model=32\), got \(2, 5, 16\)"):
            PositionalEncoder(32)(torch.randn(2, 5, 16))
        with pytest.raises(ValueError, match=r"dropout must be a float in \[0, 1\)"):
            PositionalEncoder(32, dropout=1.5)
