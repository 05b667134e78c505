"""The positional-encoding benchmark on the terminal and in PNG plots: one table and one bar plot per op,
a section per case, a line (a bar) per provider; the unavailable providers; the encoding's error at large
positions."""
from pathlib import Path

from rich.table import Table

from benchmarks.harness.ceilings import Ceilings
from benchmarks.harness.plots import bar_plot
from benchmarks.harness.rows import Row, grouped
from benchmarks.harness.tables import (
    UNAVAILABLE_SEE_BELOW,
    listed,
    speedup_cell,
    table_with_sections,
    timing_cells,
    unavailable_providers_table,
)
from benchmarks.positional.cases import Op
from benchmarks.positional.precision import PrecisionWindow
from benchmarks.positional.providers import BASELINES


def rows_by_op(rows: list[Row]) -> dict[Op, list[Row]]:
    return grouped(rows, lambda row: row.case.op)


def positional_tables(rows: list[Row]) -> list[Table]:
    """One table per op, a section per case, a line per provider."""
    tables = []
    for op, group in rows_by_op(rows).items():
        baselines = BASELINES[op]
        columns = {"case": "left", "provider": "left", "median ms": "right", "p20-p80 ms": "right", "GB/s": "right",
                   "of copy": "right", **{f"vs {b}": "right" for b in baselines}, "max |err|": "right"}
        tables.append(table_with_sections(op.value, columns, group, lambda row, b=baselines: _cells(row, b)))
    return tables


def _cells(row: Row, baselines: tuple[str, ...]) -> tuple[str, ...]:
    first = (row.case.label, row.label)
    if row.timing is None:
        return (*first, UNAVAILABLE_SEE_BELOW) + ("",) * (4 + len(baselines))
    speedups = row["speedups"] or {}
    return (
        *first,
        *timing_cells(row.timing),
        f"{row['gbps']:.4g}",
        f"{row['copy_fraction']:.1%}",
        *(speedup_cell(speedups.get(b)) for b in baselines),
        f"{row['max_abs_error']:.1e}",
    )


def unavailable_positional_table(rows: list[Row]) -> Table | None:
    return unavailable_providers_table(rows, {"cases": listed(lambda row: f"{row.case.op.value} {row.case.label}")})


def precision_table(windows: list[PrecisionWindow], d_model: int) -> Table:
    table = Table(title=f"Encoding error against float64 at growing positions (d_model={d_model}, float32 output)")
    for name in ("positions", "ours max |err|", "float32 table max |err|", "ratio"):
        table.add_column(name, justify="right")
    for window in windows:
        ours = "not run" if window.ours is None else f"{window.ours:.2e}"
        ratio = "" if window.ours is None else f"{window.ours / window.float32_table:.2f}"
        table.add_row(f"{window.first_position:,}-{window.last_position:,}", ours, f"{window.float32_table:.2e}",
                      ratio)
    return table


def plot_positional(rows: list[Row], ceilings: Ceilings, title: str, out_dir: Path) -> list[Path]:
    """One PNG per op in `out_dir`: GB/s per case, a bar per provider, the copy ceiling dashed."""
    return [
        bar_plot(out_dir / f"positional_{op.value}.png", f"{title}\n{op.value}", group, y=lambda row: row["gbps"],
                 ceiling=(ceilings.copy_gbps, ceilings.copy), axis_labels=("case", "GB/s (bytes read + written)"))
        for op, group in rows_by_op([row for row in rows if row.available]).items()
    ]
