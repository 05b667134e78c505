"""Terminal tables and PNG plots of the positional-encoding benchmark."""
from pathlib import Path

from matplotlib.figure import Figure  # the object API: no pyplot state, no display backend
from rich.table import Table

from benchmarks.ceilings import Ceilings
from benchmarks.positional_inputs import Op
from benchmarks.positional_precision import PrecisionRow
from benchmarks.positional_providers import BASELINES
from benchmarks.positional_suite import PositionalRow, rows_by_op
from benchmarks.table import listed, unavailable_providers_table

_UNAVAILABLE = "[dim]unavailable: see below[/dim]"


def positional_tables(rows: list[PositionalRow]) -> list[Table]:
    """One table per op, a section per case, a line per provider."""
    return [_op_table(op, group) for op, group in rows_by_op(rows).items()]


def _op_table(op: Op, rows: list[PositionalRow]) -> Table:
    table = Table(title=op.value)
    table.add_column("case")
    table.add_column("provider")
    baselines = BASELINES[op]
    for name in ("median ms", "p20-p80 ms", "GB/s", "of copy", *(f"vs {b}" for b in baselines), "max |err|"):
        table.add_column(name, justify="right")
    for row, next_row in zip(rows, [*rows[1:], None]):
        last_of_case = next_row is None or next_row.case != row.case
        table.add_row(row.case.label, row.label, *_measurements(row, baselines), end_section=last_of_case)
    return table


def _measurements(row: PositionalRow, baselines: tuple[str, ...]) -> tuple[str, ...]:
    if row.timing is None:
        return (_UNAVAILABLE,) + ("",) * (4 + len(baselines))
    speedups = row.speedups or {}
    return (
        f"{row.timing.median_ms:.4g}",
        f"{row.timing.p20_ms:.4g}-{row.timing.p80_ms:.4g}",
        f"{row.gbps:.4g}",
        f"{row.copy_fraction:.1%}",
        *(f"{speedups[b]:.2f}x" if b in speedups else "" for b in baselines),
        f"{row.max_abs_error:.1e}",
    )


def unavailable_positional_table(rows: list[PositionalRow]) -> Table | None:
    return unavailable_providers_table(rows, {"cases": listed(lambda row: f"{row.case.op.value} {row.case.label}")})


def precision_table(rows: list[PrecisionRow], d_model: int) -> Table:
    table = Table(title=f"Encoding error against float64 at growing positions (d_model={d_model}, float32 output)")
    for name in ("positions", "ours max |err|", "float32 table max |err|", "ratio"):
        table.add_column(name, justify="right")
    for row in rows:
        ours = "not run" if row.ours is None else f"{row.ours:.2e}"
        ratio = "" if row.ours is None else f"{row.ours / row.float32_table:.2f}"
        table.add_row(f"{row.first_position:,}-{row.last_position:,}", ours, f"{row.float32_table:.2e}", ratio)
    return table


def plot_positional(rows: list[PositionalRow], ceilings: Ceilings, title: str, out_dir: Path) -> list[Path]:
    """One PNG per op in `out_dir`: GB/s per case, a bar per provider, the copy ceiling as a line."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for op, group in rows_by_op([row for row in rows if row.available]).items():
        path = out_dir / f"positional_{op.value}.png"
        _plot_op(group, ceilings, f"{title}\n{op.value}", path)
        paths.append(path)
    return paths


def _plot_op(rows: list[PositionalRow], ceilings: Ceilings, title: str, path: Path) -> None:
    cases = list(dict.fromkeys(row.case for row in rows))
    providers = list(dict.fromkeys(row.label for row in rows))
    width = 0.8 / len(providers)
    figure = Figure(figsize=(max(6, 1.5 * len(cases)), 5))
    axes = figure.subplots()
    for index, label in enumerate(providers):
        by_case = {row.case: row.gbps for row in rows if row.label == label}
        positions = [c + index * width for c, case in enumerate(cases) if case in by_case]
        axes.bar(positions, [by_case[case] for case in cases if case in by_case], width, label=label)
    axes.axhline(ceilings.copy_gbps, color="grey", linestyle="--", label=f"ceiling: {ceilings.copy}")
    axes.set_xticks([c + 0.4 - width / 2 for c in range(len(cases))], [case.label for case in cases],
                    rotation=20, fontsize="small")
    axes.set_ylabel("GB/s (bytes read + written)")
    axes.set_title(title, fontsize="medium")
    axes.legend(fontsize="small")
    axes.grid(True, axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
