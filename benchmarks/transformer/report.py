"""The transformer benchmark on the terminal: one table per part, a section per case, a line per provider;
the unavailable providers with their reasons."""
from rich.table import Table

from benchmarks.harness.rows import Row, grouped
from benchmarks.harness.tables import (
    UNAVAILABLE_SEE_BELOW,
    listed,
    peak_memory_cell,
    table_with_sections,
    timing_cells,
    unavailable_providers_table,
)

_TITLES = {"forward": "Course Transformer forward (512/8/6+6)", "decode": "KV-cached greedy decoding (6 layers)"}


def transformer_tables(rows: list[Row]) -> list[Table]:
    return [_part_table(part, part_rows) for part, part_rows in grouped(rows, lambda row: row.case.part).items()]


def _part_table(part: str, rows: list[Row]) -> Table:
    comparison = "same tokens as torch" if part == "decode" else "max |diff| vs torch"
    columns = {"batch x context + new" if part == "decode" else "batch x seq": "left", "provider": "left",
               **dict.fromkeys(("median ms", "p20-p80 ms", "tokens/s", "peak MiB", comparison), "right")}
    return table_with_sections(_TITLES[part], columns, rows, _cells)


def _cells(row: Row) -> tuple[str, ...]:
    first = (row.case.label, row.label)
    if row.timing is None:
        return (*first, UNAVAILABLE_SEE_BELOW) + ("",) * 4
    if row["agreement"] is not None:
        comparison = f"{row['agreement']:.0%}"
    else:
        comparison = "" if row["max_abs_diff"] is None else f"{row['max_abs_diff']:.1e}"
    return (*first, *timing_cells(row.timing), f"{row['tokens_per_s']:,.0f}",
            peak_memory_cell(row["peak_memory_bytes"]), comparison)


def unavailable_transformer_table(rows: list[Row]) -> Table | None:
    return unavailable_providers_table(rows, {"cases": listed(lambda row: f"{row.case.part} {row.case.label}")})
