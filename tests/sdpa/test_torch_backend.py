"""The torch backend's common call (kernels/sdpa/torch_backend.py): SDPA after only the checks torch
lacks, the full checks for whatever torch refuses. It must never return what the full checks refuse,
must return torch's exact result where it runs, and must be the path a plain CPU call takes."""
import contextlib
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import kernels
import kernels.sdpa.functional
import kernels.shared.backends
from kernels.sdpa import torch_backend
from kernels.sdpa.validation import check_every_attention_input
from kernels.shared.backends import resolve_backend, torch_chosen


def _full_checks_accept(*call) -> bool:
    try:
        check_every_attention_input(*call)
    except (TypeError, ValueError):
        return False
    return True


def _calls() -> list[tuple]:
    """Every kind of call, on CPU tensors (meta ones for the devices): rank-3/4 shape triples with sizes
    1 and 2 and head counts that group or not, with and without enable_gqa; dtype and device triples;
    masks of ranks 0 to 5 with sizes 0 to 5, four dtypes and two devices, with and without is_causal;
    odd is_causal, dropout_p and scale values with and without a mask; arguments that are no tensors."""
    calls = []
    shapes = [shape for rank in (3, 4) for shape in itertools.product((1, 2), repeat=rank)]
    shapes += [(1, heads, 2, 4) for heads in (0, 3, 4, 6)]
    calls += [(*(torch.randn(shape) for shape in triple), None, 0.0, False, None, enable_gqa)
              for triple in itertools.product(shapes, repeat=3) for enable_gqa in (False, True)]
    dtypes = (torch.float32, torch.float16, torch.float64, torch.int64, torch.complex64)
    calls += [(*(torch.ones(2, 2, 3, 4, dtype=dtype, device=device) for dtype, device in zip(kinds, places)),
               None, 0.0, False, None, False)
              for kinds in itertools.product(dtypes, repeat=3) for places in itertools.product(("cpu", "meta"), repeat=3)]
    calls += [(np.ones((2, 2, 3, 4)),) * 3 + (None, 0.0, False, None, False),
              ([[1.0]],) * 3 + (None, 0.0, False, None, False)]
    q, k, v = torch.randn(2, 3, 4, 8), torch.randn(2, 3, 5, 8), torch.randn(2, 3, 5, 8)
    mask_shapes = [shape for rank in range(6) for shape in itertools.product((0, 1, 2, 3, 4, 5), repeat=rank)
                   if rank < 5 or shape[0] == 1][::5]
    masks = [torch.randn(shape).to(dtype) if dtype is not torch.bool else torch.rand(shape) > 0.3
             for shape in mask_shapes for dtype in (torch.bool, torch.float32, torch.float16, torch.int32)]
    masks += [torch.ones(4, 5, dtype=torch.bool, device="meta"), np.ones((4, 5), dtype=bool), "causal"]
    calls += [(q, k, v, mask, 0.0, is_causal, None, False) for mask in masks for is_causal in (False, True)]
    calls += [(q.to("meta"), k.to("meta"), v.to("meta"), mask, 0.0, False, None, False)
              for mask in (torch.rand(4, 5) > 0.3, torch.ones(4, 5, dtype=torch.bool, device="meta"))]
    for mask in (None, torch.rand(4, 5) > 0.3):
        calls += [(q, k, v, mask, dropout_p, False, None, False)
                  for dropout_p in (0.0, 1.0, 1.5, -0.1, 0, np.float64(0.0), torch.tensor(0.0), float("nan"))]
        calls += [(q, k, v, mask, 0.0, is_causal, None, False)
                  for is_causal in (True, False, 1, 0, None, np.bool_(True))]
        calls += [(q, k, v, mask, 0.0, False, scale, False)
                  for scale in (0.5, -2.0, 0.0, float("nan"), float("inf"), 2, np.float32(0.5), "0.5")]
        calls += [(q, k, v, mask, 0.0, False, None, enable_gqa) for enable_gqa in (1, None, np.bool_(True))]
    return calls


def test_the_torch_fast_path_returns_only_what_the_full_checks_accept_and_torch_computes():
    """On every kind of call: where the fast path returns an output, the full checks accept the call
    and the output is the one the checked torch backend returns, bit for bit (meta tensors: its shape);
    it runs the common calls, and leaves the others to the full checks."""
    returned = refused = 0
    for call in _calls():
        out = torch_backend.sdpa_unless_refused(*call)
        if out is None:
            refused += 1
            continue
        returned += 1
        described = [getattr(argument, "shape", argument) for argument in call]
        assert _full_checks_accept(*call), described
        expected = torch_backend.sdpa(*call)
        assert out.shape == expected.shape and out.dtype == expected.dtype, described
        if out.device.type != "meta":
            torch.testing.assert_close(out, expected, atol=0, rtol=0, equal_nan=True, msg=str(described))
    assert returned > 100 and refused > 100, (returned, refused)


def test_a_plain_cpu_call_takes_the_fast_path_and_matches_sdpa(monkeypatch):
    """With the full checks made to fail, plain calls on the torch backend (asked for, forced, or the
    default on a CPU without the interpreter) still run, record "torch" and equal SDPA's output."""
    def forbidden(*arguments):
        raise AssertionError("the full checks ran on a plain call")

    monkeypatch.setattr(kernels.sdpa.functional, "plain_call_device", forbidden)
    monkeypatch.setattr(kernels.sdpa.functional, "check_every_attention_input", forbidden)
    q, k, v = torch.randn(2, 4, 3, 8), torch.randn(2, 2, 7, 8), torch.randn(2, 2, 7, 6)
    keep = torch.rand(2, 1, 3, 7) > 0.3
    cases = [dict(), dict(is_causal=True), dict(attn_mask=keep), dict(attn_mask=torch.randn(3, 7)),
             dict(scale=0.3), dict(dropout_p=0.0, scale=-1.5)]
    for options in cases:
        expected = F.scaled_dot_product_attention(q, k, v, enable_gqa=True, **options)
        with kernels.record_backends() as ran:
            out = kernels.attention(q, k, v, enable_gqa=True, backend="torch", **options)
        assert ran == ["torch"], options
        torch.testing.assert_close(out, expected, atol=0, rtol=0, msg=str(options))
    with kernels.record_backends() as ran:
        with kernels.use_backend("torch"):
            kernels.attention(q[:, :2], k, v)
        monkeypatch.setattr(kernels.shared.backends, "INTERPRETING", False)
        kernels.attention(q[:, :2], k, v)
    assert ran == ["torch", "torch"]


def test_what_torch_refuses_on_the_torch_backend_gets_our_error_or_our_semantics():
    """A 1-D (Nk,) mask, which torch refuses, runs broadcast as the checked path runs it; a key/value
    dtype mismatch, which torch also refuses, gets our message."""
    q, k, v = (torch.randn(2, 2, 3, 5) for _ in range(3))
    keep = torch.tensor([True, False, True])
    out = kernels.attention(q, k[:, :, :3], v[:, :, :3], attn_mask=keep, backend="torch")
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k[:, :, :3], v[:, :, :3], attn_mask=keep[None]),
                               atol=0, rtol=0)
    with pytest.raises(TypeError, match="share one dtype"):
        kernels.attention(q, k.double(), v, backend="torch")


class _CudaStandIn:
    """What torch_chosen reads of a CUDA tensor, for a machine without one."""
    is_cuda, is_cpu = True, False


@pytest.mark.parametrize("interpreting", [False, True])
@pytest.mark.parametrize("import_error", [None, "no triton"])
def test_torch_chosen_agrees_with_resolve_backend(monkeypatch, interpreting, import_error):
    monkeypatch.setattr(kernels.shared.backends, "INTERPRETING", interpreting)
    monkeypatch.setattr(kernels.shared.backends, "TRITON_IMPORT_ERROR", import_error)
    tensors = {"cpu": torch.empty(1), "meta": torch.empty(1, device="meta"), "cuda": _CudaStandIn()}
    for (device, tensor), requested, forced in itertools.product(
            tensors.items(), (None, "torch", "triton", "reference", "flash"), (None, "torch", "triton", "reference")):
        with kernels.use_backend(forced) if forced else contextlib.nullcontext():
            try:
                expected = resolve_backend(requested, torch.device(device)) == "torch"
            except ValueError:
                expected = False
            assert torch_chosen(requested, tensor) == expected, (device, requested, forced)
    if import_error is None:  # where the device decides, no device: the caller's checks name the argument
        assert torch_chosen(None, [[1.0]]) is False
