"""Where the tests run: CUDA when present, else the CPU (the Triton kernels in Triton's interpreter,
which tests/conftest.py switches on before triton is imported)."""
import pytest
import torch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

requires_cuda = pytest.mark.skipif(
    DEVICE != "cuda", reason="needs CUDA: at this size Triton's CPU interpreter would take minutes"
)
