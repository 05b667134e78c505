"""The decode benchmark on the terminal and in PNG plots: one table and one plot per (batch, heads, Nq, D),
a section per context, a line per provider; the unavailable providers with their reasons."""
from pathlib import Path

from rich.table import Table

from benchmarks.harness.ceilings import Ceilings
from benchmarks.harness.plots import line_plot
from benchmarks.harness.rows import Row, grouped
from benchmarks.harness.tables import (
    UNAVAILABLE_SEE_BELOW,
    case_count,
    peak_memory_cell,
    speedup_cell,
    table_with_sections,
    timing_cells,
    unavailable_providers_table,
)

_COLUMNS = {"ctx": "left", "provider": "left", "splits": "right", "median ms": "right", "p20-p80 ms": "right",
            "GB/s": "right", "of copy": "right", "vs SDPA": "right", "max |err|": "right", "peak MiB": "right"}


def rows_by_group(rows: list[Row]) -> dict[str, list[Row]]:
    """Rows of the same (batch, heads, Nq, D) at every context, in sweep order."""
    return grouped(rows, lambda row: row.case.group)


def decode_tables(rows: list[Row]) -> list[Table]:
    return [table_with_sections(group, _COLUMNS, group_rows, _cells)
            for group, group_rows in rows_by_group(rows).items()]


def _cells(row: Row) -> tuple[str, ...]:
    splits = "" if row["num_splits"] is None else str(row["num_splits"])
    first = (str(row.case.context), row.label, splits)
    if row.timing is None:
        return (*first, UNAVAILABLE_SEE_BELOW) + ("",) * 6
    return (
        *first,
        *timing_cells(row.timing),
        f"{row['gbps']:.4g}",
        f"{row['copy_fraction']:.1%}",
        speedup_cell(row["speedup_vs_sdpa_default"]),
        f"{row['max_abs_error']:.1e}",
        peak_memory_cell(row["peak_memory_bytes"]),
    )


def unavailable_decode_table(rows: list[Row]) -> Table | None:
    return unavailable_providers_table(rows, {"cases": case_count})


def plot_decode(rows: list[Row], ceilings: Ceilings, title: str, out_dir: Path) -> list[Path]:
    """One PNG per (batch, heads, Nq, D) in `out_dir`: GB/s against the context, a line per provider,
    the copy ceiling dashed."""
    return [
        line_plot(out_dir / f"decode_{group.replace('/', '-').replace(' ', '_')}.png", f"{title}\n{group}", group_rows,
                  x=lambda row: row.case.context, y=lambda row: row["gbps"],
                  ceiling=(ceilings.copy_gbps, ceilings.copy),
                  axis_labels=("context (keys in the cache)", "GB/s (bytes read + written)"))
        for group, group_rows in rows_by_group([row for row in rows if row.available]).items()
    ]
