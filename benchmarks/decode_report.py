"""Terminal tables and PNG plots of the decode benchmark."""
from pathlib import Path

from matplotlib.figure import Figure  # the object API: no pyplot state, no display backend
from rich.table import Table

from benchmarks.ceilings import Ceilings
from benchmarks.decode_suite import DecodeRow
from benchmarks.table import case_count, unavailable_providers_table

_UNAVAILABLE = "[dim]unavailable: see below[/dim]"


def rows_by_group(rows: list[DecodeRow]) -> dict[str, list[DecodeRow]]:
    """Rows of the same (batch, heads, Nq, D) at every context, in sweep order."""
    grouped: dict[str, list[DecodeRow]] = {}
    for row in rows:
        grouped.setdefault(row.case.group, []).append(row)
    return grouped


def decode_tables(rows: list[DecodeRow]) -> list[Table]:
    """One table per (batch, heads, Nq, D), a section per context, a line per provider."""
    return [_group_table(group, group_rows) for group, group_rows in rows_by_group(rows).items()]


def _group_table(title: str, rows: list[DecodeRow]) -> Table:
    table = Table(title=title)
    table.add_column("ctx")
    table.add_column("provider")
    for name in ("splits", "median ms", "p20-p80 ms", "GB/s", "of copy", "vs SDPA", "max |err|", "peak MiB"):
        table.add_column(name, justify="right")
    for row, next_row in zip(rows, [*rows[1:], None]):
        last_of_case = next_row is None or next_row.case != row.case
        table.add_row(str(row.case.context), row.label, *_measurements(row), end_section=last_of_case)
    return table


def _measurements(row: DecodeRow) -> tuple[str, ...]:
    splits = "" if row.num_splits is None else str(row.num_splits)
    if row.timing is None:
        return (splits, _UNAVAILABLE) + ("",) * 6
    return (
        splits,
        f"{row.timing.median_ms:.4g}",
        f"{row.timing.p20_ms:.4g}-{row.timing.p80_ms:.4g}",
        f"{row.gbps:.4g}",
        f"{row.copy_fraction:.1%}",
        f"{row.speedup_vs_sdpa_default:.2f}x" if row.speedup_vs_sdpa_default else "",
        f"{row.max_abs_error:.1e}",
        f"{row.peak_memory_bytes / 2**20:,.0f}" if row.peak_memory_bytes is not None else "n/a",
    )


def unavailable_decode_table(rows: list[DecodeRow]) -> Table | None:
    return unavailable_providers_table(rows, {"cases": case_count})


def plot_decode(rows: list[DecodeRow], ceilings: Ceilings, title: str, out_dir: Path) -> list[Path]:
    """One PNG per (batch, heads, Nq, D) in `out_dir`: GB/s against the context, a line per provider,
    the copy ceiling as a dashed line."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for group, group_rows in rows_by_group([row for row in rows if row.available]).items():
        path = out_dir / f"decode_{group.replace('/', '-').replace(' ', '_')}.png"
        _plot_group(group_rows, ceilings, f"{title}\n{group}", path)
        paths.append(path)
    return paths


def _plot_group(rows: list[DecodeRow], ceilings: Ceilings, title: str, path: Path) -> None:
    figure = Figure(figsize=(8, 5))
    axes = figure.subplots()
    for label in dict.fromkeys(row.label for row in rows):
        line = [row for row in rows if row.label == label]
        axes.plot([r.case.context for r in line], [r.gbps for r in line], marker="o", label=label)
    axes.axhline(ceilings.copy_gbps, color="grey", linestyle="--", label=f"ceiling: {ceilings.copy}")
    contexts = sorted({row.case.context for row in rows})
    axes.set_xscale("log", base=2)
    axes.set_xticks(contexts, labels=[str(n) for n in contexts])
    axes.set_ylim(bottom=0)
    axes.set_xlabel("context (keys in the cache)")
    axes.set_ylabel("GB/s (bytes read + written)")
    axes.set_title(title, fontsize="medium")
    axes.legend(fontsize="small")
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
