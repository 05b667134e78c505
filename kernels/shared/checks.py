"""Argument checks that both op families (and the modules over them) make, with one wording each.

Every check raises an error that names the argument; the family-specific checks live in
kernels/sdpa/validation.py and kernels/positional/validation.py.
"""
import math
import numbers

import torch

# The float dtypes every Triton kernel of the package runs.
KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
# The attention kernels run float64 too (fp64 accumulators), for exact checks and gradcheck; the
# positional kernel computes its angles in float32, which float64 callers would not expect.
KERNEL_DTYPES_WITH_FLOAT64 = KERNEL_DTYPES + (torch.float64,)


def _is_real_number(value) -> bool:
    """A real number as torch takes one for a float argument: a Python or NumPy number (bool included,
    as torch counts it) or a 0-d real tensor."""
    if isinstance(value, torch.Tensor):
        return value.dim() == 0 and not (value.is_complex() or value.dtype == torch.bool)
    return isinstance(value, numbers.Real)


def check_probability(name: str, value, *, one_allowed: bool = False) -> None:
    """A dropout probability: a number in [0, 1), or [0, 1] where `one_allowed` (everything dropped)."""
    if type(value) is float and 0.0 <= value < 1.0:  # the common case, without the ABC check below
        return
    if not (_is_real_number(value) and (0.0 <= value <= 1.0 if one_allowed else 0.0 <= value < 1.0)):
        interval = "[0, 1]" if one_allowed else "[0, 1)"
        raise ValueError(f"{name} must be a float in {interval}, got {value!r}")


def check_finite_float(name: str, value, *, optional: bool = False) -> None:
    """A finite number (a softmax or input scale); None too when `optional`."""
    if optional and value is None:
        return
    if type(value) is float and math.isfinite(value):  # the common case, without the ABC check below
        return
    if not (_is_real_number(value) and math.isfinite(value)):
        raise ValueError(f"{name} must be {'None or ' if optional else ''}a finite float, got {value!r}")


def check_kernel_dtype(dtype: torch.dtype, supported: tuple[torch.dtype, ...], tensors: str) -> None:
    """`dtype` is one the Triton kernel runs; `tensors` names the inputs it is read from."""
    if dtype not in supported:
        names = [str(each).removeprefix("torch.") for each in supported]
        listed = f"{', '.join(names[:-1])} and {names[-1]}"
        raise TypeError(f"the triton backend supports {tensors} dtypes {listed}, got {dtype}")
