"""The attention sweeps on the terminal and in PNG plots: one table and one plot per (head dim, mask kind,
mode), a section (a line) per shape, a line per provider; the unavailable providers with their reasons."""

from collections.abc import Iterable
from pathlib import Path

from rich.table import Table

from benchmarks.attention.cases import MaskKind
from benchmarks.attention.modes import Mode
from benchmarks.harness.ceilings import Ceilings
from benchmarks.harness.plots import line_plot
from benchmarks.harness.rows import Row, grouped
from benchmarks.harness.tables import (
    NOT_TIMED_CELLS,
    UNAVAILABLE_SEE_BELOW,
    case_count,
    listed,
    peak_memory_cell,
    speedup_cell,
    table_with_sections,
    timing_cells,
    unavailable_providers_table,
)

DisplayGroup = tuple[int, MaskKind, Mode]  # head dim, mask kind, mode
_COLUMNS = {"N": "left", "BxH": "left", "provider": "left", "median ms": "right", "p20-p80 ms": "right",
            "TFLOP/s": "right", "of matmul": "right", "vs SDPA": "right", "max |err|": "right", "peak MiB": "right"}


def by_display_group(rows: Iterable[Row]) -> dict[DisplayGroup, list[Row]]:
    """Rows grouped the way tables and plots show them, each group in sweep order."""
    return grouped(rows, lambda row: (row.case.head_dim, row.case.mask, row.case.mode))


def group_title(head_dim: int, mask: MaskKind, mode: Mode) -> str:
    """How tables and plots name a display group."""
    title = f"D={head_dim}, mask: {mask.value}"
    return title if mode is Mode.FORWARD else f"{title}, {mode.value}"


def attention_tables(rows: list[Row]) -> list[Table]:
    return [table_with_sections(group_title(*key), _COLUMNS, group, _cells)
            for key, group in by_display_group(rows).items()]


def _cells(row: Row) -> tuple[str, ...]:
    shape = (str(row.case.seq_len), f"{row.case.batch}x{row.case.heads}", row.label)
    if not row.available:
        return (*shape, UNAVAILABLE_SEE_BELOW) + ("",) * 6
    if row.timing is None:
        return (*shape, *NOT_TIMED_CELLS, "", "", "", _error(row), "")
    return (
        *shape,
        *timing_cells(row.timing),
        f"{row['tflops']:.3g}",
        f"{row['ceiling_fraction']:.1%}",
        speedup_cell(row["speedup_vs_sdpa_default"]),
        _error(row),
        peak_memory_cell(row["peak_memory_bytes"]),
    )


def _error(row: Row) -> str:
    """The largest error; with several outputs (dq, dk, dv), also which one it is."""
    errors = row["max_abs_errors"]
    text = f"{row['max_abs_error']:.1e}"
    return text if len(errors) == 1 else f"{text} ({max(errors, key=errors.__getitem__)})"


def unavailable_table(rows: Iterable[Row]) -> Table | None:
    return unavailable_providers_table(rows, {
        "cases": case_count,
        "masks": listed(lambda row: row.case.mask.value),
        "modes": listed(lambda row: row.case.mode.value),
    })


def plot_attention(rows: list[Row], ceilings: Ceilings, title: str, out_dir: Path, name: str) -> list[Path]:
    """One PNG per (head dim, mask kind, mode) in `out_dir`, `name_d64_causal[_bwd|_fwd-bwd].png`: TFLOP/s
    against the sequence length, a line per provider, the matmul ceiling dashed; returns their paths."""
    return [
        line_plot(out_dir / f"{name}_d{d}_{mask.value}{mode.file_tag}.png", f"{title}\n{group_title(d, mask, mode)}",
                  group, x=lambda row: row.case.seq_len, y=lambda row: row["tflops"],
                  ceiling=(ceilings.matmul_tflops, ceilings.matmul), axis_labels=("sequence length N", "TFLOP/s"))
        for (d, mask, mode), group in by_display_group(row for row in rows if row.timing).items()
    ]
