"""The pass rule for any op (docs/design.md, "Correctness"), as a function and as a pytest assertion.

`actual` (the op under test) is compared with `exact` (the same op in float64 on the same inputs)
and judged against `baseline` (the plain PyTorch computation in actual's precision): it passes when
its max error is at most `error_ratio` x the baseline's max error + `absolute_floor` (tolerances.py).
Nothing is normalised before comparing, so a wrong scale or a misplaced mask shows at full size.
"""
import math
from dataclasses import asdict, dataclass

import torch

from kernels.testing.errors import ErrorStats, measure_error, safe_ratio
from kernels.testing.tolerances import Tolerance, tolerance_for


@dataclass(frozen=True, repr=False)
class ParityResult(ErrorStats):
    """The error of `actual` against the float64 result, and the verdict of the pass rule on it."""

    passed: bool
    dtype: torch.dtype
    baseline_max_abs_error: float  # PyTorch's own max error in the same precision
    error_ratio: float  # max_abs_error / baseline_max_abs_error
    tolerance: Tolerance
    problem: str | None = None  # why it failed beyond the numbers (a wrong output dtype)

    @property
    def allowed_max_abs_error(self) -> float:
        return self.tolerance.allowed(self.baseline_max_abs_error)

    def as_dict(self) -> dict:
        """Plain values, for JSON."""
        return {**asdict(self), "dtype": str(self.dtype), "allowed_max_abs_error": self.allowed_max_abs_error}

    def __repr__(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        comparison = "<=" if self.max_abs_error <= self.allowed_max_abs_error else ">"
        problem = f" ({self.problem})" if self.problem else ""
        return (
            f"ParityResult({verdict}{problem}, {str(self.dtype).removeprefix('torch.')} {list(self.shape)}: "
            f"max |error| {self.max_abs_error:.3g} {comparison} allowed {self.allowed_max_abs_error:.3g} "
            f"({self.tolerance.error_ratio:g} x PyTorch's {self.baseline_max_abs_error:.3g} "
            f"+ {self.tolerance.absolute_floor:g}), {self.error_ratio:.3g}x PyTorch's error\n"
            f"  mean |error| {self.mean_abs_error:.3g}, max rel {self.max_rel_error:.3g}, "
            f"mean rel {self.mean_rel_error:.3g}; {self.describe_worst()})"
        )


def check_parity(
    actual: torch.Tensor, exact: torch.Tensor, baseline: torch.Tensor, *, tolerance: Tolerance | None = None
) -> ParityResult:
    """Judge `actual` by the pass rule; `tolerance` defaults to the table's row for baseline's dtype."""
    if not actual.shape == exact.shape == baseline.shape:
        raise ValueError(
            f"shapes differ: actual {tuple(actual.shape)}, exact {tuple(exact.shape)}, "
            f"baseline {tuple(baseline.shape)}"
        )
    tolerance = tolerance or tolerance_for(baseline.dtype)
    error = measure_error(actual, exact)
    baseline_error = measure_error(baseline, exact).max_abs_error
    problem = None if actual.dtype == baseline.dtype else f"dtype {actual.dtype}, expected {baseline.dtype}"
    within = math.isfinite(error.max_abs_error) and error.max_abs_error <= tolerance.allowed(baseline_error)
    return ParityResult(
        **vars(error),
        passed=within and problem is None,
        dtype=actual.dtype,
        baseline_max_abs_error=baseline_error,
        error_ratio=safe_ratio(error.max_abs_error, baseline_error),
        tolerance=tolerance,
        problem=problem,
    )


def assert_passes(result: ParityResult) -> ParityResult:
    if not result.passed:
        raise AssertionError(repr(result))
    return result


def assert_parity(
    actual: torch.Tensor, exact: torch.Tensor, baseline: torch.Tensor, *, tolerance: Tolerance | None = None
) -> ParityResult:
    """`check_parity` that raises AssertionError, with the full report, when the rule fails."""
    return assert_passes(check_parity(actual, exact, baseline, tolerance=tolerance))
