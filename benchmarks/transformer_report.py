"""Terminal tables of the transformer benchmark: one per part, a section per case, a line per provider."""
from rich.table import Table

from benchmarks.table import listed, unavailable_providers_table
from benchmarks.transformer_suite import TransformerRow

_UNAVAILABLE = "[dim]unavailable: see below[/dim]"
_TITLES = {"forward": "Course Transformer forward (512/8/6+6)", "decode": "KV-cached greedy decoding (6 layers)"}


def transformer_tables(rows: list[TransformerRow]) -> list[Table]:
    parts = dict.fromkeys(row.part for row in rows)
    return [_part_table(part, [row for row in rows if row.part == part]) for part in parts]


def _part_table(part: str, rows: list[TransformerRow]) -> Table:
    table = Table(title=_TITLES[part])
    table.add_column("batch x context + new" if part == "decode" else "batch x seq")
    table.add_column("provider")
    comparison = "same tokens as torch" if part == "decode" else "max |diff| vs torch"
    for name in ("median ms", "p20-p80 ms", "tokens/s", "peak MiB", comparison):
        table.add_column(name, justify="right")
    for row, next_row in zip(rows, [*rows[1:], None]):
        last_of_case = next_row is None or next_row.case != row.case
        table.add_row(row.case.label, row.label, *_measurements(row), end_section=last_of_case)
    return table


def _measurements(row: TransformerRow) -> tuple[str, ...]:
    if row.timing is None:
        return (_UNAVAILABLE,) + ("",) * 4
    if row.agreement is not None:
        comparison = f"{row.agreement:.0%}"
    else:
        comparison = "" if row.max_abs_diff is None else f"{row.max_abs_diff:.1e}"
    return (
        f"{row.timing.median_ms:.4g}",
        f"{row.timing.p20_ms:.4g}-{row.timing.p80_ms:.4g}",
        f"{row.tokens_per_s:,.0f}",
        "n/a" if row.peak_memory_bytes is None else f"{row.peak_memory_bytes / 2**20:,.0f}",
        comparison,
    )


def unavailable_transformer_table(rows: list[TransformerRow]) -> Table | None:
    return unavailable_providers_table(rows, {"cases": listed(lambda row: f"{row.part} {row.case.label}")})