"""The launch path of `kernels.attention` makes no host synchronisation, so that a decode step can be
captured in a CUDA graph: validation, the backend choice, the custom op and the launchers (the split
plan, the key-padding span, the flags) read shapes, strides and dtypes only, never a tensor's values.

Each call runs with every way of reading values on the host patched to raise (`.item()`, `.cpu()`,
`.tolist()`, `.numpy()`, `nonzero`, and a tensor's `bool`, `int`, `float` and `index`), except inside
the kernels' own execution: Triton's interpreter reads tensors there, as a GPU would on the device.
"""
import contextlib
from collections.abc import Iterator

import pytest
import torch
from triton.runtime.interpreter import InterpretedFunction

import kernels
from kernels.sdpa.triton.decode import force_num_splits
from kernels.testing import assert_attention_close

_TENSOR_READS = ("item", "cpu", "tolist", "numpy", "nonzero", "__bool__", "__int__", "__float__", "__index__")


@contextlib.contextmanager
def host_reads_refused(monkeypatch) -> Iterator[list[str]]:
    """Inside the block, a tensor read on the host raises, except while a kernel runs in the
    interpreter; yields the names of the kernels that ran."""
    armed = [True]
    ran: list[str] = []

    def refusing(name, real):
        def read(*args, **kwargs):
            if armed[0]:
                raise AssertionError(f"host synchronisation in the launch path: {name}")
            return real(*args, **kwargs)
        return read

    for name in _TENSOR_READS:
        monkeypatch.setattr(torch.Tensor, name, refusing(f"Tensor.{name}", getattr(torch.Tensor, name)))
    monkeypatch.setattr(torch, "nonzero", refusing("torch.nonzero", torch.nonzero))
    real_run = InterpretedFunction.run

    def run_kernel(kernel, *args, **kwargs):
        ran.append(kernel.fn.__name__.strip("_"))
        armed[0] = False
        try:
            return real_run(kernel, *args, **kwargs)
        finally:
            armed[0] = True

    monkeypatch.setattr(InterpretedFunction, "run", run_kernel)
    try:
        yield ran
    finally:
        armed[0] = False
        monkeypatch.undo()


def test_the_guard_refuses_host_reads(monkeypatch):
    with host_reads_refused(monkeypatch):
        for read in (lambda t: t.item(), lambda t: bool(t), lambda t: float(t), lambda t: torch.nonzero(t),
                     lambda t: t.cpu(), lambda t: t.tolist()):
            with pytest.raises(AssertionError, match="host synchronisation"):
                read(torch.ones(()))


def key_padding_mask(batch: int, n_keys: int) -> torch.Tensor:
    """(B, 1, 1, Nk) bool: batch element b pads its first b * 5 keys (left padding) and its last 3."""
    keep = torch.ones(batch, 1, 1, n_keys, dtype=torch.bool)
    for element in range(batch):
        keep[element, ..., : element * 5] = False
    keep[..., n_keys - 3:] = False
    return keep


@pytest.mark.parametrize("path, num_splits, expected_kernels", [
    ("forward", 1, ["attention_forward_kernel"]),
    ("decode", 3, ["split_attention_kernel", "combine_splits_kernel"]),
])
@pytest.mark.parametrize("grad", [False, True], ids=["inference", "training"])
def test_a_key_padding_decode_step_reads_no_tensor_on_the_host(monkeypatch, path, num_splits, expected_kernels,
                                                                 grad):
    batch, heads_q, heads_kv, n_keys, head_dim = 2, 4, 2, 40, 16
    query = torch.randn(batch, heads_q, 1, head_dim, requires_grad=grad)
    key, value = (torch.randn(batch, heads_kv, n_keys, head_dim) for _ in range(2))
    mask = key_padding_mask(batch, n_keys)
    with force_num_splits(num_splits), host_reads_refused(monkeypatch) as ran:
        out = kernels.attention(query, key, value, attn_mask=mask, enable_gqa=True, backend="triton")
    assert ran == expected_kernels
    assert_attention_close(out.detach(), query.detach(), key, value, attn_mask=mask, enable_gqa=True)


def test_a_causal_forward_reads_no_tensor_on_the_host(monkeypatch):
    query, key, value = (torch.randn(1, 2, 19, 16) for _ in range(3))
    with host_reads_refused(monkeypatch) as ran:
        out = kernels.attention(query, key, value, is_causal=True, backend="triton")
    assert ran == ["attention_forward_kernel"]
    assert_attention_close(out, query, key, value, is_causal=True)


def test_a_block_map_forward_reads_no_tensor_on_the_host(monkeypatch):
    """A dense mask over more than one map tile: its block map and tile lists are built on the
    device (kernels/sdpa/block_mask.py), read by the kernel, never by the host."""
    query, key, value = (torch.randn(1, 2, 150, 16) for _ in range(3))
    document = (torch.arange(150) >= 100).long()
    mask = document[:, None] == document[None, :]
    with host_reads_refused(monkeypatch) as ran:
        out = kernels.attention(query, key, value, attn_mask=mask, backend="triton")
    assert ran == ["attention_forward_kernel"]
    assert_attention_close(out, query, key, value, attn_mask=mask)
