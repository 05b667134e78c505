"""Offsets past 2**31 elements: a row index times a row stride is computed in int64, in every kernel.

The views below put their last rows more than 2**31 elements past their first, over storage that is
allocated but never touched beyond those rows (so the CPU holds them in a few pages). With 32-bit
offsets the kernels read the wrong address (in the interpreter: a crash or garbage)."""
import pytest
import torch
import triton
import triton.language as tl

import kernels
import reference
from kernels.sdpa.triton.common import dropout_keep, needs_wide_bases
from kernels.sdpa.triton.decode import force_num_splits

WIDE_STRIDE = (1 << 30) + 64  # elements between two rows: the third row starts past 2**31


def wide_rows(rows: int, width: int, dtype=torch.float32) -> torch.Tensor:
    """(1, 1, rows, width) random rows WIDE_STRIDE elements apart in one large, mostly untouched storage."""
    storage = torch.empty(WIDE_STRIDE * (rows - 1) + width, dtype=dtype)
    view = storage.as_strided((1, 1, rows, width), (0, 0, WIDE_STRIDE, 1))
    view.copy_(torch.randn(1, 1, rows, width).to(dtype))
    return view


def check_forward_and_backward(q, k, v, **kwargs):
    leaves = [t.detach().requires_grad_() if t.is_floating_point() else t for t in (q, k, v)]
    with kernels.record_backends() as ran:
        out = kernels.attention(*leaves, backend="triton", **kwargs)
    assert ran == ["triton"]
    exact_inputs = [t.detach().double().requires_grad_() for t in (q, k, v)]
    exact = reference.scaled_dot_product_attention(*exact_inputs, **kwargs)
    torch.testing.assert_close(out.double(), exact, atol=2e-5, rtol=2e-5)
    dout = torch.randn_like(exact)
    out.backward(dout.float())
    exact.backward(dout)
    for got, want in zip(leaves, exact_inputs):
        torch.testing.assert_close(got.grad.double(), want.grad, atol=2e-5, rtol=2e-5)


def test_keys_and_values_past_two_to_the_31():
    q = torch.randn(1, 1, 5, 16)
    check_forward_and_backward(q, wide_rows(3, 16), wide_rows(3, 16))


def test_queries_past_two_to_the_31():
    k, v = torch.randn(1, 1, 4, 16), torch.randn(1, 1, 4, 16)
    check_forward_and_backward(wide_rows(3, 16), k, v)


def test_batch_and_head_offsets_past_two_to_the_31():
    """The forward sums a (batch, head) matrix's offset in int32 unless some tensor spans 2**31 elements
    (common.needs_wide_bases): here the third batch element of q and the third head of k start past it."""
    q_storage, k_storage = torch.empty(WIDE_STRIDE * 2 + 3 * 5 * 16), torch.empty(WIDE_STRIDE * 2 + 3 * 4 * 16)
    q = q_storage.as_strided((3, 3, 5, 16), (WIDE_STRIDE, 5 * 16, 16, 1))
    k = k_storage.as_strided((3, 3, 4, 16), (4 * 16, WIDE_STRIDE, 16, 1))
    q.copy_(torch.randn(3, 3, 5, 16))
    k.copy_(torch.randn(3, 3, 4, 16))
    v = torch.randn(3, 3, 4, 16)
    assert needs_wide_bases(q) and needs_wide_bases(k) and not needs_wide_bases(v)
    check_forward_and_backward(q, k, v)


def test_split_key_decode_past_two_to_the_31():
    q = torch.randn(1, 1, 1, 16)
    k, v = wide_rows(3, 16), wide_rows(3, 16)
    with force_num_splits(2), kernels.record_backends() as ran:
        out = kernels.attention(q, k, v, backend="triton")
    assert ran == ["triton"]
    exact = reference.scaled_dot_product_attention(q.double(), k.double(), v.double())
    torch.testing.assert_close(out.double(), exact, atol=2e-5, rtol=2e-5)


def test_a_mask_whose_rows_lie_past_two_to_the_31():
    q, k, v = (torch.randn(1, 1, 3, 16) for _ in range(3))
    keep = wide_rows(3, 3, dtype=torch.bool)
    keep[..., 0] = True  # every row attends at least one key
    check_forward_and_backward(q, k, v, attn_mask=keep)


@triton.jit
def _keep_bits_kernel(out_ptr, first_row, seed, batch_head, BLOCK: tl.constexpr):
    offs_m = first_row + tl.arange(0, BLOCK)
    offs_n = tl.arange(0, BLOCK)
    keep = dropout_keep(seed, batch_head, offs_m, offs_n, 0.5)
    tl.store(out_ptr + tl.arange(0, BLOCK)[:, None] * BLOCK + offs_n[None, :], keep.to(tl.uint8))


def keep_bits(first_row: int) -> torch.Tensor:
    """The keep mask of 16 x 16 scores from `first_row` on, for one seed and head."""
    out = torch.empty(16, 16, dtype=torch.uint8)
    _keep_bits_kernel[(1,)](out, first_row, 1234, 3, BLOCK=16)
    return out


def test_dropout_draws_do_not_repeat_past_two_to_the_32_scores_per_head():
    """With 2**16 keys, query row 2**16 starts 2**32 scores after row 0: a counter of the score's
    position taken mod 2**32 gave both rows the same mask."""
    assert not torch.equal(keep_bits(0), keep_bits(1 << 16))
    assert torch.equal(keep_bits(5), keep_bits(5))  # and the draw is a pure function of its counter
