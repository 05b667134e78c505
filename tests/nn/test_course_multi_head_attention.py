"""kernels.MultiHeadAttention: the course's module on the fused kernel, same numbers as reference."""
import pytest
import torch

import kernels
import reference
from kernels.testing import TOLERANCES
from support.devices import DEVICE


def paired_modules(d_model, num_heads, dtype=torch.float32):
    ref = reference.MultiHeadAttention(d_model, num_heads).to(DEVICE, dtype)
    fused = kernels.MultiHeadAttention(d_model, num_heads).to(DEVICE, dtype)
    fused.load_state_dict(ref.state_dict())
    return ref, fused


def course_masks(batch, n_q, n_k):
    """The mask shapes the course uses, with its convention: 0 masks a pair out."""
    padding = torch.ones(batch, 1, 1, n_k, dtype=torch.int64, device=DEVICE)
    padding[0, ..., n_k - 3:] = 0
    look_ahead = torch.tril(torch.ones(n_q, n_k, device=DEVICE)).expand(batch, 1, n_q, n_k)
    return {"none": None, "padding": padding, "look_ahead": look_ahead}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("mask_name", ["none", "padding", "look_ahead"])
@pytest.mark.parametrize("n_q, n_k", [(13, 13), (6, 19)])
def test_same_outputs_as_reference_module(n_q, n_k, mask_name, dtype):
    ref, fused = paired_modules(48, 4, dtype)
    query = torch.randn(3, n_q, 48, device=DEVICE, dtype=dtype)
    memory = torch.randn(3, n_k, 48, device=DEVICE, dtype=dtype)
    mask = course_masks(3, n_q, n_k)[mask_name]
    with torch.no_grad():
        exact = ref.double()(query.double(), memory.double(), memory.double(), mask)
        out = fused(query, memory, memory, mask)
    assert out.dtype == dtype and out.shape == (3, n_q, 48)
    tolerance = 20 * TOLERANCES[dtype].absolute_floor
    torch.testing.assert_close(out.double(), exact, atol=tolerance, rtol=tolerance)


def test_state_dicts_are_interchangeable():
    ref, fused = paired_modules(32, 2)
    assert ref.state_dict().keys() == fused.state_dict().keys()
    ref.load_state_dict(fused.state_dict())
