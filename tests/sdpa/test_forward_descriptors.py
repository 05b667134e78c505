"""The forward's TMA tensor-descriptor path (descriptors.py), forced on the CPU (Triton's interpreter
runs device descriptors) and on any GPU: the same answers as the float64 reference for every
variant, and the pointer path for every input a descriptor cannot describe. Each test proves which
path ran: the launcher's decision, and in the interpreter the tiles actually moved through
descriptors."""
import math

import pytest
import torch

import kernels
import reference
from kernels.sdpa.triton import forward
from kernels.sdpa.triton.descriptors import descriptor_compatible, force_tensor_descriptors
from kernels.sdpa.triton.forward import launch_forward
from kernels.shared.triton_availability import INTERPRETING
from kernels.testing import assert_attention_close
from test_attention_forward import AWKWARD_SHAPES, make_qkv, run_triton
from test_attention_masks import random_mask


class PathSpy:
    """What the forward launches inside `watch` decided (USE_TMA per launch) and, in the
    interpreter, how many tiles went through descriptors (loads of Q, K, V; stores of O)."""

    def __init__(self, monkeypatch):
        self.decisions: list[bool] = []
        self.descriptor_loads = 0
        self.descriptor_stores = 0
        decide = forward.uses_tensor_descriptors

        def spy_decision(*tensors):
            self.decisions.append(decide(*tensors))
            return self.decisions[-1]

        monkeypatch.setattr(forward, "uses_tensor_descriptors", spy_decision)
        if INTERPRETING:
            from triton.runtime.interpreter import InterpreterBuilder
            load, store = InterpreterBuilder.create_descriptor_load, InterpreterBuilder.create_descriptor_store

            def counted_load(builder, *args, **kwargs):
                self.descriptor_loads += 1
                return load(builder, *args, **kwargs)

            def counted_store(builder, *args, **kwargs):
                self.descriptor_stores += 1
                return store(builder, *args, **kwargs)

            monkeypatch.setattr(InterpreterBuilder, "create_descriptor_load", counted_load)
            monkeypatch.setattr(InterpreterBuilder, "create_descriptor_store", counted_store)

    def assert_descriptors_ran(self):
        assert self.decisions and all(self.decisions), f"the pointer path ran: {self.decisions}"
        if INTERPRETING:  # one Q tile and at least one K and one V tile per block; one O store per block
            assert self.descriptor_loads >= 3 and self.descriptor_stores >= 1

    def assert_pointers_ran(self):
        assert self.decisions and not any(self.decisions), f"the descriptor path ran: {self.decisions}"
        assert self.descriptor_loads == 0 and self.descriptor_stores == 0


@pytest.fixture
def descriptor_path(monkeypatch):
    """Run the forward with descriptors forced on; yields the PathSpy."""
    spy = PathSpy(monkeypatch)
    with force_tensor_descriptors(True):
        yield spy


@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("shape", AWKWARD_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_reference_on_awkward_shapes(shape, dtype, is_causal, device, descriptor_path):
    """Odd lengths (ragged last tiles: zero-filled loads, clipped stores), padded head dims, GQA/MQA."""
    q, k, v = make_qkv(*shape, dtype, device)
    gqa = shape[1] != shape[2]
    out = run_triton(q, k, v, is_causal=is_causal, enable_gqa=gqa)
    descriptor_path.assert_descriptors_ran()
    assert_attention_close(out, q, k, v, is_causal=is_causal, enable_gqa=gqa)


def test_value_head_dim_may_differ(device, descriptor_path):
    q, k, v = make_qkv(2, 2, 2, 19, 23, 32, torch.float16, device, head_dim_v=48)
    out = run_triton(q, k, v, is_causal=True)
    descriptor_path.assert_descriptors_ran()
    assert_attention_close(out, q, k, v, is_causal=True)


@pytest.mark.parametrize("kind", ["bool", "additive"])
@pytest.mark.parametrize("mask_shape", [(2, 1, 1, 37), (2, 3, 21, 37)], ids=["key_padding", "full"])
def test_masks(mask_shape, kind, device, descriptor_path):
    q, k, v = make_qkv(2, 3, 3, 21, 37, 32, torch.float16, device)
    mask = random_mask(mask_shape, kind, device)
    if kind == "bool":
        mask = mask | (torch.arange(37, device=device) == 0)
    out = run_triton(q, k, v, attn_mask=mask, is_causal=False)
    descriptor_path.assert_descriptors_ran()
    assert_attention_close(out, q, k, v, attn_mask=mask)


def test_dropout_replays_the_kernels_mask(device, descriptor_path):
    q, k, v = make_qkv(2, 4, 2, 37, 45, 32, torch.float16, device)
    torch.manual_seed(11)
    keep = kernels.attention_dropout_mask(q, k, 0.25)
    torch.manual_seed(11)
    out = run_triton(q, k, v, dropout_p=0.25, is_causal=True, enable_gqa=True)
    descriptor_path.assert_descriptors_ran()
    expected = reference.scaled_dot_product_attention(q.double(), k.double(), v.double(), dropout_p=0.25,
                                                      dropout_mask=keep, is_causal=True, enable_gqa=True)
    torch.testing.assert_close(out.double(), expected, atol=5e-3, rtol=5e-3)


def _layout(name: str, device: str, dtype=torch.float16):
    """q, k, v (B=2, H=3, N=27, D=32) laid out as `name` says."""
    batch, heads, n, head_dim = 2, 3, 27, 32
    if name == "bnhd_view":  # how models hold heads: (B, N, H, D) viewed as (B, H, N, D)
        return [torch.randn(batch, n, heads, head_dim, dtype=dtype, device=device).transpose(1, 2) for _ in range(3)]
    if name == "packed_qkv":  # slices of one fused projection output (B, N, 3, H, D)
        qkv = torch.randn(batch, n, 3, heads, head_dim, dtype=dtype, device=device)
        return [qkv[:, :, i].transpose(1, 2) for i in range(3)]
    if name == "strided_head_dim":  # every other element: the head dim is not contiguous
        return [torch.randn(batch, heads, n, 2 * head_dim, dtype=dtype, device=device)[..., ::2] for _ in range(3)]
    if name == "misaligned_base":  # starts 2 bytes into its storage
        return [torch.randn(batch * heads * n * head_dim + 1, dtype=dtype, device=device)[1:]
                .view(batch, heads, n, head_dim) for _ in range(3)]
    if name == "unaligned_row_stride":  # head dim 20: 40-byte rows
        return list(make_qkv(batch, heads, heads, n, n, 20, dtype, device))
    if name == "broadcast_rows":  # one key row expanded over the sequence: row stride 0
        q, k, v = make_qkv(batch, heads, heads, n, 1, head_dim, dtype, device)
        return [q, k.expand(-1, -1, n, -1), v.expand(-1, -1, n, -1)]
    if name == "float64":
        return list(make_qkv(batch, heads, heads, n, n, head_dim, torch.float64, device))
    raise ValueError(name)


@pytest.mark.parametrize("layout", ["bnhd_view", "packed_qkv"])
def test_strided_layouts_a_descriptor_takes(layout, device, descriptor_path):
    q, k, v = _layout(layout, device)
    assert not q.is_contiguous() and all(map(descriptor_compatible, (q, k, v)))
    out = run_triton(q, k, v, is_causal=True)
    descriptor_path.assert_descriptors_ran()
    assert_attention_close(out, q, k, v, is_causal=True)


@pytest.mark.parametrize("layout", ["strided_head_dim", "misaligned_base", "unaligned_row_stride", "broadcast_rows",
                                    "float64"])
def test_inputs_a_descriptor_cannot_take_fall_back_to_pointers(layout, device, descriptor_path):
    q, k, v = _layout(layout, device)
    assert not all(map(descriptor_compatible, (q, k, v)))
    out = run_triton(q, k, v, is_causal=True)
    descriptor_path.assert_pointers_ran()
    if q.dtype == torch.float64:  # the parity table has no fp64 row: fp64 is held to ~1e-6 (see the forward tests)
        expected = reference.scaled_dot_product_attention(q, k, v, is_causal=True)
        torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-6)
    else:
        assert_attention_close(out, q, k, v, is_causal=True)


@pytest.mark.parametrize("is_causal", [False, True])
def test_writes_every_output_row_and_no_padding(is_causal, device, descriptor_path):
    """The descriptor store clips the ragged last block and the padded head-dim columns: a poisoned
    output is fully written, and the rows of a wider buffer past the view are left alone."""
    batch, heads, n_q, n_k, head_dim = 2, 3, 45, 31, 40
    q, k, v = make_qkv(batch, heads, heads, n_q, n_k, head_dim, torch.float16, device)
    buffer = torch.full((batch, n_q + 8, heads, 64), float("nan"), dtype=q.dtype, device=device)
    out = buffer[:, :n_q, :, :head_dim].transpose(1, 2)
    lse = torch.full((batch, heads, n_q), float("nan"), device=device)
    launch_forward(q, k, v, None, is_causal, 1 / math.sqrt(head_dim), out=out, lse=lse)
    descriptor_path.assert_descriptors_ran()
    assert_attention_close(out, q, k, v, is_causal=is_causal)
    assert buffer[:, n_q:].isnan().all() and buffer[..., head_dim:].isnan().all()
    assert not lse.isnan().any()


def test_forcing_takes_a_bool():
    with pytest.raises(TypeError, match="enabled must be a bool"), force_tensor_descriptors(1):
        pass


def test_pointer_path_when_forced_off(device, monkeypatch):
    spy = PathSpy(monkeypatch)
    q, k, v = make_qkv(1, 2, 2, 33, 33, 64, torch.float16, device)
    with force_tensor_descriptors(False):
        out = run_triton(q, k, v, is_causal=True)
    spy.assert_pointers_ran()
    assert_attention_close(out, q, k, v, is_causal=True)


def test_warp_specialization_is_off_unless_forced_and_then_on_the_descriptor_path_only(device, monkeypatch):
    """WARP_SPECIALIZE (warp_specialization.py): off by default; forced, the descriptor path's key loop
    takes it for 16-bit queries (the interpreter runs the loop as written: the same answer), the pointer
    path and float32 never do."""
    from kernels.sdpa.triton.warp_specialization import force_warp_specialization, uses_warp_specialization
    half = torch.empty(1, dtype=torch.float16, device="cpu")
    assert not uses_warp_specialization(True, half)
    with force_warp_specialization(True):
        assert uses_warp_specialization(True, half) and not uses_warp_specialization(True, half.float())
    with pytest.raises(TypeError, match="enabled must be a bool"):
        with force_warp_specialization(1):
            pass
    flags = []
    decide = forward.uses_warp_specialization
    monkeypatch.setattr(forward, "uses_warp_specialization",
                        lambda use_tma, query: flags.append(decide(use_tma, query)) or flags[-1])
    q, k, v = make_qkv(1, 2, 2, 37, 45, 32, torch.float16, device)
    for descriptors in (True, False):
        with force_tensor_descriptors(descriptors), force_warp_specialization(True):
            out, _ = launch_forward(q, k, v, None, True, 0.2)
        assert_attention_close(out, q, k, v, is_causal=True, scale=0.2)
    on_blackwell = q.device.type != "cuda" or torch.cuda.get_device_capability(q.device)[0] >= 10
    assert flags == [on_blackwell, False]
