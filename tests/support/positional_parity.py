"""The float64 truth for the sinusoidal encoding, the plain PyTorch computation it is judged against,
and the pass rule's tolerance widened by the float32 angle allowance.

`float64_encoding` is written straight from the definition, pe[pos, 2i] = sin(pos / 10000^(2i/d)),
pe[pos, 2i+1] = cos(pos / 10000^(2i/d)), independently of both `reference` and `kernels`, so that it
can be evaluated at any position (a float64 table up to position 10**6 would not fit in memory).
"""
import torch

from kernels.testing import TOLERANCES, Tolerance
from reference.positional_encoding import sinusoidal_table

# The angle position x frequency is float32 in our kernel and in the course's float32 table alike, so
# both err by a few float32 ulps of the angle, in proportion to the position, but not in the same
# columns: where the table happens to round better, "2x its error" is not a fair bound. Measured in
# the interpreter: at most 2.0 x position x 2**-24 (d_model 1 to 128 and 512, positions up to 2**24);
# a GPU's approximate exp2 may add about as much again.
ANGLE_ULPS = 4


def float64_encoding(positions: torch.Tensor, d_model: int) -> torch.Tensor:
    """(..., d_model) float64 encoding of integer `positions` of any shape."""
    columns = torch.arange(d_model, device=positions.device)
    pair_start = (columns - columns % 2).double()  # 2i for columns 2i and 2i + 1
    angles = positions.double().unsqueeze(-1) / 10000.0 ** (pair_start / d_model)
    return torch.where(columns % 2 == 0, torch.sin(angles), torch.cos(angles))


def course_table_rows(positions: torch.Tensor, d_model: int, dtype: torch.dtype) -> torch.Tensor:
    """The plain PyTorch computation's encoding: the course's float32 table, cast to `dtype`."""
    table = sinusoidal_table(int(positions.max()) + 1, d_model).to(positions.device)
    return table[positions].to(dtype)


def angle_allowance(positions: torch.Tensor) -> float:
    return ANGLE_ULPS * int(positions.abs().max()) * 2**-24


def encoding_tolerance(dtype: torch.dtype, positions: torch.Tensor) -> Tolerance:
    """The pass rule's tolerance for `dtype`, its floor raised by the float32 angle allowance."""
    tolerance = TOLERANCES[dtype]
    return Tolerance(tolerance.error_ratio, tolerance.absolute_floor + angle_allowance(positions))
