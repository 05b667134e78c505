"""Test setup: CUDA when present, else the real Triton kernels in Triton's interpreter on the CPU.

TRITON_INTERPRET must be set before triton is first imported, which is why it happens here, at
collection time, before any test module imports `kernels`.
"""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

from support.devices import DEVICE  # noqa: E402


@pytest.fixture
def device() -> str:
    return DEVICE


@pytest.fixture(autouse=True)
def fresh_seed():
    """Fresh random inputs every run; a failing test's captured output names its seed."""
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"torch seed {seed}")
    torch.manual_seed(seed)
