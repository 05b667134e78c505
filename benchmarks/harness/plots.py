"""PNG plots of a benchmark's rows, a line or a bar per provider, the card's measured ceiling as a dashed
line: rate against a length (attention, decode), or rate per case (positional)."""

from collections.abc import Callable
from pathlib import Path

from matplotlib.figure import Figure  # the object API: no pyplot state, no display backend

from benchmarks.harness.rows import Row, grouped


def line_plot(path: Path, title: str, rows: list[Row], x: Callable[[Row], int], y: Callable[[Row], float],
              ceiling: tuple[float, str], axis_labels: tuple[str, str]) -> Path:
    """`y(row)` against `x(row)` (powers of two, log scale), a line per provider label."""
    figure = Figure(figsize=(8, 5))
    axes = figure.subplots()
    for label, line in grouped(rows, lambda row: row.label).items():
        axes.plot([x(row) for row in line], [y(row) for row in line], marker="o", label=label)
    axes.set_xscale("log", base=2)
    ticks = sorted({x(row) for row in rows})
    axes.set_xticks(ticks, labels=[str(tick) for tick in ticks])
    axes.set_ylim(bottom=0)
    return _finish(figure, axes, path, title, ceiling, axis_labels)


def bar_plot(path: Path, title: str, rows: list[Row], y: Callable[[Row], float], ceiling: tuple[float, str],
             axis_labels: tuple[str, str]) -> Path:
    """`y(row)` per case (labelled by `case.label`), a bar per provider label."""
    cases = list(dict.fromkeys(row.case for row in rows))
    providers = list(dict.fromkeys(row.label for row in rows))
    width = 0.8 / len(providers)
    figure = Figure(figsize=(max(6, 1.5 * len(cases)), 5))
    axes = figure.subplots()
    for index, label in enumerate(providers):
        by_case = {row.case: y(row) for row in rows if row.label == label}
        positions = [c + index * width for c, case in enumerate(cases) if case in by_case]
        axes.bar(positions, [by_case[case] for case in cases if case in by_case], width, label=label)
    axes.set_xticks([c + 0.4 - width / 2 for c in range(len(cases))], [case.label for case in cases],
                    rotation=20, fontsize="small")
    return _finish(figure, axes, path, title, ceiling, axis_labels, grid_axis="y")


def _finish(figure: Figure, axes, path: Path, title: str, ceiling: tuple[float, str], axis_labels: tuple[str, str],
            grid_axis: str = "both") -> Path:
    value, what = ceiling
    axes.axhline(value, color="grey", linestyle="--", label=f"ceiling: {what}")
    axes.set_xlabel(axis_labels[0])
    axes.set_ylabel(axis_labels[1])
    axes.set_title(title, fontsize="medium")
    axes.legend(fontsize="small")
    axes.grid(True, axis=grid_axis, alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path
