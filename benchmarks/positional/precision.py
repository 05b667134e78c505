"""How the float32 encoding degrades with the position: max |pe - float64| over windows of positions,
ours (the kernel's sin/cos and exp2, as compiled for this device) beside a float32 table built with
the course's formula. Both compute the angle position * frequency in float32, so both errors grow in
proportion to the position; the columns say by how much."""
from dataclasses import dataclass

import torch

from kernels.shared.backends import triton_runs_on
from kernels.positional.functional import add_positional_encoding
from kernels.positional.torch_fallback import sinusoid

WINDOW_STARTS = (0, 448, 4096, 10_000, 100_000, 1_000_000, (1 << 24) - 64)
_WINDOW = 64


@dataclass(frozen=True)
class PrecisionWindow:
    first_position: int
    last_position: int
    ours: float | None  # max |ours - float64|; None where the Triton kernels cannot run
    float32_table: float

    def as_record(self) -> dict:
        return vars(self)


def measure_precision(device: torch.device, d_model: int) -> list[PrecisionWindow]:
    """One row per window of 64 consecutive positions (the last window ends at 2**24)."""
    rows = []
    for start in WINDOW_STARTS:
        positions = torch.arange(start, start + _WINDOW, device=device).view(1, _WINDOW)
        exact = sinusoid(positions, d_model, torch.float64)
        table = sinusoid(positions, d_model, torch.float32)
        ours = None
        if triton_runs_on(device):
            encoded = add_positional_encoding(
                torch.zeros(1, _WINDOW, d_model, device=device), position_ids=positions, backend="triton")
            ours = (encoded.double() - exact).abs().max().item()
        rows.append(PrecisionWindow(start, start + _WINDOW - 1, ours, (table.double() - exact).abs().max().item()))
    return rows
