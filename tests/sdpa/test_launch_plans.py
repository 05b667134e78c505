"""The launchers' remembered plans (kernels/shared/launch_plans.py): a launch is handed exactly the
arguments a launcher that remembered nothing would hand it, whatever launch came before, for every
change of shape, stride, dtype, mask, flag or switch a plan's key must catch; and the plans stay
bounded. The kernels do not run here: each launch's arguments are recorded in place of the launch."""
import contextlib

import pytest
import torch

from kernels.sdpa.block_mask import MAP_BLOCK
from kernels.sdpa.triton import decode, forward
from kernels.sdpa.triton.common import empty_attention_output
from kernels.sdpa.triton.descriptors import force_tensor_descriptors
from kernels.sdpa.triton.warp_specialization import force_warp_specialization
from kernels.sdpa.variants import AttentionVariants
from kernels.shared.dropout import Dropout
from kernels.shared.launch_plans import LaunchPlans

_KERNELS = (forward._attention_forward_kernel, decode._split_attention_kernel, decode._combine_splits_kernel)
_PLANS = (forward._forward_plans, decode._decode_plans, decode._split_plans)


def _comparable(value):
    if isinstance(value, torch.Tensor):  # made anew by some launches (outputs, workspaces): no address
        return ("tensor", value.dtype, tuple(value.shape), value.stride())
    if callable(value):  # the forward's grid
        return ("grid", *(value({"BLOCK_M": block}) for block in (16, 64)))
    return value


@pytest.fixture
def recorded(monkeypatch):
    """The (kernel, grid, args, kwargs) of every launch made, the launches themselves skipped."""
    launches = []
    for kernel in _KERNELS:
        def run(*args, grid, warmup, kernel=kernel, **kwargs):
            launches.append((kernel, _comparable(grid), tuple(map(_comparable, args)),
                             {name: _comparable(value) for name, value in kwargs.items()}))
        monkeypatch.setattr(kernel, "run", run)
    return launches


def _launches(recorded, call) -> list:
    start = len(recorded)
    call()
    return recorded[start:]


def _base_warm_and_cold(recorded, base, call):
    """The launches of `base`, then of `call` right after it (whose plans it must not be served), then
    of `call` with no plan remembered."""
    for plans in _PLANS:
        plans.clear()
    launches = [_launches(recorded, base), _launches(recorded, call)]
    for plans in _PLANS:
        plans.clear()
    return (*launches, _launches(recorded, call))


def _inputs(device, dtype=torch.float32, n_queries=5, n_keys=37, head_dim=16, heads=(4, 2), batch=2):
    q = torch.randn(batch, heads[0], n_queries, head_dim, device=device, dtype=dtype)
    k, v = (torch.randn(batch, heads[1], n_keys, head_dim, device=device, dtype=dtype) for _ in range(2))
    return q, k, v


def _key_padding(q, k, dtype=torch.bool):
    keep = torch.rand(q.shape[0], 1, 1, k.shape[2], device=q.device) > 0.3
    mask = keep if dtype is torch.bool else torch.where(keep, 0.0, float("-inf")).to(dtype)
    return mask.expand(q.shape[0], q.shape[1], q.shape[2], k.shape[2])


def _variants(window=None, softcap=None, alibi_slopes=None):
    return AttentionVariants(window, softcap, alibi_slopes, None)


@contextlib.contextmanager
def _block_maps(value):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KERNELS_BLOCK_MAPS", value)
        yield


@contextlib.contextmanager
def _fp32_precision(value):
    matmul = torch.backends.cuda.matmul
    previous, matmul.fp32_precision = matmul.fp32_precision, value
    try:
        yield
    finally:
        matmul.fp32_precision = previous


def _switched(switches, call):
    def switched():
        with contextlib.ExitStack() as stack:
            for switch in switches:
                stack.enter_context(switch())
            call()
    return switched


def _forward_calls(device):
    """(name, base, call): forward launches that differ from their base in one thing a plan depends on."""
    q, k, v = _inputs(device)
    q_rows_first, k_rows_first = (x.transpose(1, 2).contiguous().transpose(1, 2) for x in (q, k))  # other strides
    half = _inputs(device, torch.float16)
    out = torch.empty(2, 4, 5, 16, device=device)  # (B, Hq, Nq, Dv) in memory: other strides than the default
    long_keys = _inputs(device, n_keys=MAP_BLOCK + 3)
    long_mask = torch.rand(2, 4, 5, MAP_BLOCK + 3, device=device) > 0.3  # rows differ: a block map's mask
    misaligned = torch.randn(q.numel() + 1, device=device)[1:].view(q.shape)  # 4 bytes past a boundary
    lse = torch.empty(2, 4, 5, device=device)
    launch = forward.launch_forward

    def plain():
        launch(q, k, v, None, False, 0.25)

    def tma(*more):
        return lambda call: _switched([lambda: force_tensor_descriptors(True), *more], call)

    warp = tma(lambda: force_warp_specialization(True))
    return [
        ("same call", plain, plain),
        ("other scale", plain, lambda: launch(q, k, v, None, False, 0.5)),
        ("negative scale", plain, lambda: launch(q, k, v, None, False, -0.25)),
        ("query strides", plain, lambda: launch(q_rows_first, k, v, None, False, 0.25)),
        ("key strides", plain, lambda: launch(q, k_rows_first, v, None, False, 0.25)),
        ("output strides", plain, lambda: launch(q, k, v, None, False, 0.25, out=out)),
        ("fewer queries", plain, lambda: launch(q[:, :, :3], k, v, None, False, 0.25)),  # same strides
        ("more keys", plain, lambda: launch(*_inputs(device, n_keys=40), None, False, 0.25)),
        ("head dim", plain, lambda: launch(*_inputs(device, head_dim=24), None, False, 0.25)),
        ("float16", plain, lambda: launch(*half, None, False, 0.25)),
        ("float64", lambda: launch(*half, None, False, 0.25),
         lambda: launch(*_inputs(device, torch.float64), None, False, 0.25)),
        ("causal", plain, lambda: launch(q, k, v, None, True, 0.25)),
        ("lse", plain, lambda: launch(q, k, v, None, False, 0.25, lse=lse)),
        ("dropout", plain, lambda: launch(q, k, v, None, False, 0.25, dropout=Dropout(0.2, 7))),
        ("key padding", plain, lambda: launch(q, k, v, _key_padding(q, k), False, 0.25)),
        ("additive mask", lambda: launch(q, k, v, _key_padding(q, k), False, -0.25),  # no scale fold either way
         lambda: launch(q, k, v, _key_padding(q, k, torch.float32), False, -0.25)),
        ("mask strides", lambda: launch(q, k, v, _key_padding(q, k), False, 0.25),
         lambda: launch(q, k, v, torch.rand(2, 4, 5, 37, device=device) > 0.3, False, 0.25)),
        ("block map", _switched([lambda: _block_maps("0")], lambda: launch(*long_keys, long_mask, False, 0.25)),
         _switched([lambda: _block_maps("1")], lambda: launch(*long_keys, long_mask, False, 0.25))),
        ("softcap", plain, lambda: launch(q, k, v, None, False, 0.25, variants=_variants(softcap=30.0))),
        ("window", plain, lambda: launch(q, k, v, None, False, 0.25, variants=_variants(window=(2, None)))),
        ("descriptors", plain, tma()(plain)),
        ("misaligned", tma()(plain), tma()(lambda: launch(misaligned, k, v, None, False, 0.25))),
        ("warp specialisation", tma()(lambda: launch(*half, None, False, 0.25)),
         warp(lambda: launch(*half, None, False, 0.25))),
        ("ieee dots", plain, _switched([lambda: _fp32_precision("ieee")], plain)),
    ]


def _decode_calls(device):
    """(name, base, call): split-K launches that differ from their base in one thing a plan depends on."""
    q, k, v = _inputs(device, n_queries=2)
    half = _inputs(device, torch.float16, n_queries=2)
    slopes = torch.rand(4, device=device)
    launch = decode.launch_decode

    def plain():
        launch(q, k, v, None, 0.25, 3)

    return [
        ("same call", plain, plain),
        ("more splits", plain, lambda: launch(q, k, v, None, 0.25, 4)),
        ("no grouped heads", plain, lambda: launch(*_inputs(device, n_queries=2, heads=(4, 4)), None, 0.25, 3)),
        ("one query", plain, lambda: launch(q[:, :, :1], k, v, None, 0.25, 3)),  # same strides
        ("output strides", plain, lambda: launch(q, k, v, None, 0.25, 3, out=torch.empty(2, 4, 2, 16, device=device))),
        ("float64", lambda: launch(*half, None, 0.25, 3), lambda: launch(*_inputs(device, torch.float64, n_queries=2),
                                                                        None, 0.25, 3)),
        ("lse", plain, lambda: launch(q, k, v, None, 0.25, 3, lse=torch.empty(2, 4, 2, device=device))),
        ("key padding", plain, lambda: launch(q, k, v, _key_padding(q, k), 0.25, 3)),
        ("additive mask", lambda: launch(q, k, v, _key_padding(q, k), -0.25, 3),  # no scale fold either way
         lambda: launch(q, k, v, _key_padding(q, k, torch.float32), -0.25, 3)),
        ("mask strides", lambda: launch(q, k, v, _key_padding(q, k), 0.25, 3),
         lambda: launch(q, k, v, torch.rand(2, 4, 2, 37, device=device) > 0.3, 0.25, 3)),
        ("alibi", plain, lambda: launch(q, k, v, None, 0.25, 3, variants=_variants(alibi_slopes=slopes))),
        ("window", plain, lambda: launch(q, k, v, None, 0.25, 3, variants=_variants(window=(None, 3)))),
        ("ieee dots", plain, _switched([lambda: _fp32_precision("ieee")], plain)),
    ]


@pytest.mark.parametrize("calls", [_forward_calls, _decode_calls], ids=["forward", "decode"])
def test_a_remembered_plan_is_the_plan_a_fresh_launcher_makes(calls, recorded, device):
    for name, base, call in calls(device):
        based, warm, cold = _base_warm_and_cold(recorded, base, call)
        assert warm and warm == cold, f"{name}: launched with a stale plan"
        assert (based == cold) == (name == "same call"), f"{name}: launched as its base, so it proves nothing"


def test_the_split_plan_follows_the_multiprocessor_count(monkeypatch, device):
    q, k, _ = _inputs(device, n_queries=1, n_keys=4096, heads=(8, 8), batch=1)
    splits = []
    for count in (132, 8, None):  # an H100's SMs, a small card's, and no GPU (never split)
        monkeypatch.setitem(decode._multiprocessors, q.device, count)
        splits.append(decode.plan_num_splits(q, k, False, None))
    assert splits == [16, 2, 1]


def test_plans_are_bounded_and_the_oldest_goes_first():
    plans = LaunchPlans(size=3)
    for key in range(5):
        assert plans.add(key, str(key)) == str(key)
    assert len(plans) == 3 and [plans.get(key) for key in range(5)] == [None, None, "2", "3", "4"]


@pytest.mark.parametrize("shape", [(2, 3, 5, 8), (1, 1, 1, 1), (2, 0, 5, 8), (2, 3, 0, 8), (0, 3, 5, 8), (2, 3, 5, 0)])
def test_the_output_is_laid_out_queries_before_heads(shape):
    """empty_attention_output's strides are those of a (B, Nq, Hq, Dv) tensor transposed, sizes 0 included."""
    batch, heads, n_queries, head_dim_v = shape
    q, v = torch.empty(batch, heads, n_queries, 4), torch.empty(batch, 1, 3, head_dim_v)
    out = empty_attention_output(q, v)
    expected = torch.empty(batch, n_queries, heads, head_dim_v).transpose(1, 2)
    assert (out.shape, out.stride(), out.dtype) == (expected.shape, expected.stride(), q.dtype)
