"""How far one tensor is from another, and where: the numbers every parity report is made of."""
import math
from dataclasses import dataclass

import torch


def safe_ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, where x / 0 is 0 for x == 0 and infinite otherwise."""
    if denominator > 0:
        return numerator / denominator
    return 0.0 if numerator == 0 else math.inf


@dataclass(frozen=True)
class ErrorStats:
    """The differences of `actual` from `expected`, computed in float64.

    Relative errors are normwise (max |error| / max |expected|, mean |error| / mean |expected|), so
    entries near zero do not blow them up. A non-finite entry is an infinite error unless both
    tensors hold the same value there (the same infinity, or NaN in both). The worst element is
    None for empty tensors.
    """

    shape: tuple[int, ...]
    max_abs_error: float
    mean_abs_error: float
    max_rel_error: float
    mean_rel_error: float
    worst_index: tuple[int, ...] | None
    worst_actual: float | None
    worst_expected: float | None

    def describe_worst(self) -> str:
        if self.worst_index is None:
            return "no elements"
        where = list(self.worst_index)
        return f"worst at {where}: got {self.worst_actual:.6g}, expected {self.worst_expected:.6g}"


def measure_error(actual: torch.Tensor, expected: torch.Tensor) -> ErrorStats:
    """`actual` against `expected` (same shape; any dtypes, compared on expected's device)."""
    if actual.shape != expected.shape:
        raise ValueError(f"cannot compare shape {tuple(actual.shape)} with shape {tuple(expected.shape)}")
    expected = expected.detach().double()
    actual = actual.detach().to(expected.device, torch.float64)
    same = (actual == expected) | (actual.isnan() & expected.isnan())
    error = torch.where(same, 0.0, (actual - expected).abs().nan_to_num(nan=math.inf))
    shape = tuple(actual.shape)
    if error.numel() == 0:
        return ErrorStats(shape, 0.0, 0.0, 0.0, 0.0, None, None, None)
    magnitude = expected.abs().nan_to_num(nan=0.0)
    max_abs, mean_abs = error.max().item(), error.mean().item()
    worst = tuple(int(i) for i in torch.unravel_index(error.argmax(), shape))
    return ErrorStats(
        shape=shape,
        max_abs_error=max_abs,
        mean_abs_error=mean_abs,
        max_rel_error=safe_ratio(max_abs, magnitude.max().item()),
        mean_rel_error=safe_ratio(mean_abs, magnitude.mean().item()),
        worst_index=worst,
        worst_actual=actual[worst].item(),
        worst_expected=expected[worst].item(),
    )
