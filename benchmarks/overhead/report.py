"""The overhead tables: the torch path (ours vs SDPA, and the modules) and the Triton path's levels."""
from rich.table import Table

from benchmarks.harness.rows import Row, grouped
from benchmarks.harness.tables import UNAVAILABLE_SEE_BELOW, case_count, unavailable_providers_table

_TORCH_COLUMNS = {"case": "left", "provider": "left", "median us": "right", "p20-p80 us": "right",
                  "added us": "right", "added p20-p80 us": "right", "added / torch's": "right"}
_TRITON_COLUMNS = {"level": "left", "median us": "right", "p20-p80 us": "right", "own us": "right"}


def _us(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _timing_cells(row: Row) -> tuple[str, str]:
    timing = row.timing
    median = _us(timing.median_ms * 1e3) + (" noisy" if timing.too_noisy_to_rank else "")
    return median, f"{timing.p20_ms * 1e3:.2f}-{timing.p80_ms * 1e3:.2f} n={timing.samples}"


def torch_path_table(rows: list[Row]) -> Table | None:
    rows = [row for row in rows if row.case.path in ("torch path", "module")]
    if not rows:
        return None
    table = Table(title="torch path: host time per call, ours vs torch's own (added = median of ours - torch's, "
                        "a block of each per round)")
    for name, justify in _TORCH_COLUMNS.items():
        table.add_column(name, justify=justify)
    for row, next_row in zip(rows, [*rows[1:], None]):
        timing = _timing_cells(row) if row.timing else (UNAVAILABLE_SEE_BELOW, "")
        added_spread = "" if row["added_us"] is None else f"{row['added_p20_us']:.2f}..{row['added_p80_us']:.2f}"
        table.add_row(f"{row.case.shape_label}, {row.case.variant}", row.label, *timing, _us(row["added_us"]),
                      added_spread, "" if row["added_fraction"] is None else f"{row['added_fraction']:.1%}",
                      end_section=next_row is None or next_row.case != row.case)
    return table


def triton_path_tables(rows: list[Row]) -> list[Table]:
    """One table per Triton-path case: a line per level, then the parts of the outermost level."""
    tables = []
    triton_rows = [row for row in rows if row.case.path not in ("torch path", "module")]
    for case, case_rows in grouped(triton_rows, lambda row: row.case).items():
        table = Table(title=f"Triton path, host time up to the launch (no GPU): {case.label}")
        for name, justify in _TRITON_COLUMNS.items():
            table.add_column(name, justify=justify)
        for row in case_rows:
            timing = _timing_cells(row) if row.timing else (UNAVAILABLE_SEE_BELOW, "")
            table.add_row(row.label, *timing, _us(row["own_us"]), end_section=row.provider == "Triton binding")
        tables.append(table)
    return tables


def unavailable_table(rows: list[Row]) -> Table | None:
    return unavailable_providers_table(rows, {"cases": case_count})
