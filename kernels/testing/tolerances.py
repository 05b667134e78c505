"""The pass rule's tolerances, one row per precision (docs/design.md, "Correctness").

An output in a given dtype passes when its max error against the float64 result is at most
`error_ratio` times the error of the plain PyTorch computation in that same dtype, plus
`absolute_floor` (which covers outputs PyTorch happens to get exactly right).
"""
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Tolerance:
    error_ratio: float
    absolute_floor: float

    def allowed(self, baseline_error: float) -> float:
        """The largest max error that passes, given the baseline's max error."""
        return self.error_ratio * baseline_error + self.absolute_floor


TOLERANCES = {
    torch.float32: Tolerance(error_ratio=2.0, absolute_floor=2e-5),
    torch.float16: Tolerance(error_ratio=2.0, absolute_floor=1e-3),
    torch.bfloat16: Tolerance(error_ratio=2.0, absolute_floor=8e-3),
}


def tolerance_for(dtype: torch.dtype) -> Tolerance:
    if dtype not in TOLERANCES:
        known = ", ".join(str(d) for d in TOLERANCES)
        raise ValueError(f"no tolerance for {dtype} in the table ({known}): pass tolerance=Tolerance(...)")
    return TOLERANCES[dtype]
