"""Rich renderings of benchmark results for the terminal."""

from collections import defaultdict
from collections.abc import Callable, Iterable

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from benchmarks.attention_suite import AttentionRow, by_display_group, group_title
from benchmarks.ceilings import Ceilings

_UNAVAILABLE = "[dim]unavailable[/dim]"
_LOG_WIDTH = 160


def make_console() -> Console:
    """The terminal's width on a terminal; a wide fixed one in logs and pipes (rich would use 80)."""
    console = Console()
    return console if console.is_terminal else Console(width=_LOG_WIDTH)


def header(title: str, metadata: dict, details: dict[str, str]) -> Panel:
    """What was measured, on which card, with which software: printed before any number."""
    lines = [
        f"card: {metadata['card']}",
        f"torch {metadata['torch']} (CUDA {metadata['cuda'] or 'none'}), triton {metadata['triton']}, "
        f"python {metadata['python']}, commit {metadata['git_commit'] or 'unknown'}, {metadata['date']}",
        *(f"{key}: {value}" for key, value in details.items()),
    ]
    return Panel("\n".join(lines), title=title, title_align="left")


def ceilings_table(ceilings: Ceilings) -> Table:
    table = Table(title="Measured ceilings")
    table.add_column("what")
    table.add_column("rate", justify="right")
    table.add_row(ceilings.matmul, f"{ceilings.matmul_tflops:.3g} TFLOP/s")
    table.add_row(ceilings.copy, f"{ceilings.copy_gbps:.3g} GB/s")
    return table


def attention_tables(rows: list[AttentionRow]) -> list[Table]:
    """One table per (head dim, mask kind, mode), a section per shape, a line per provider."""
    return [_attention_table(group_title(*key), group) for key, group in by_display_group(rows).items()]


def _attention_table(title: str, rows: list[AttentionRow]) -> Table:
    table = Table(title=title)
    for name in ("N", "BxH", "provider"):
        table.add_column(name)
    for name in ("median ms", "p20-p80 ms", "TFLOP/s", "of matmul", "vs SDPA", "max |err|", "peak MiB"):
        table.add_column(name, justify="right")
    for row, next_row in zip(rows, [*rows[1:], None], strict=True):
        case = row.case
        shape = (str(case.seq_len), f"{case.batch}x{case.heads}", row.label)
        last_of_shape = next_row is None or next_row.case != case
        table.add_row(*shape, *_measurements(row), end_section=last_of_shape)
    return table


def _measurements(row: AttentionRow) -> tuple[str, ...]:
    if row.timing is None:
        return (_UNAVAILABLE,) + ("",) * 6
    timing = row.timing
    return (
        f"{timing.median_ms:.4g}",
        f"{timing.p20_ms:.4g}-{timing.p80_ms:.4g}",
        f"{row.tflops:.3g}",
        f"{row.ceiling_fraction:.1%}",
        f"{row.speedup_vs_sdpa_default:.2f}x" if row.speedup_vs_sdpa_default else "",
        _error(row),
        f"{row.peak_memory_bytes / 2**20:,.0f}" if row.peak_memory_bytes is not None else "n/a",
    )


def _error(row: AttentionRow) -> str:
    """The largest error; with several outputs (dq, dk, dv), also which one it is."""
    text = f"{row.max_abs_error:.1e}"
    if len(row.errors) == 1:
        return text
    return f"{text} ({max(row.errors, key=row.errors.__getitem__)})"


def unavailable_providers_table(rows: Iterable, columns: dict[str, Callable[[list], str]]) -> Table | None:
    """Why each provider did not run: one line per (provider, reason), so that a reason shared by many
    cases is listed once, with a column per entry of `columns` (name -> text from that line's rows).
    Any benchmark's rows with `available`, `label` and `reason` fit."""
    rows_by_reason: dict[tuple[str, str], list] = defaultdict(list)
    for row in rows:
        if not row.available:
            rows_by_reason[row.label, row.reason].append(row)
    if not rows_by_reason:
        return None
    table = Table(title="Unavailable providers (not timed)")
    for name in ("provider", *columns, "reason"):
        table.add_column(name)
    for (label, reason), group in rows_by_reason.items():
        table.add_row(label, *(text(group) for text in columns.values()), reason)
    return table


def case_count(rows: list) -> str:
    return str(len(rows))


def listed(value: Callable[[object], str]) -> Callable[[list], str]:
    """A column listing each distinct `value(row)` of the rows once, in order."""
    return lambda rows: ", ".join(dict.fromkeys(value(row) for row in rows))


def unavailable_table(rows: Iterable[AttentionRow]) -> Table | None:
    return unavailable_providers_table(rows, {
        "cases": case_count,
        "masks": listed(lambda row: row.case.mask.value),
        "modes": listed(lambda row: row.mode.value),
    })