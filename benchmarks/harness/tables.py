"""Rich renderings every benchmark shares: the console, the header printed before any number, the
ceilings, the unavailable-providers table, and the cells of a timed row."""

from collections import defaultdict
from collections.abc import Callable, Iterable

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from benchmarks.harness.ceilings import Ceilings
from benchmarks.harness.rows import Row
from benchmarks.harness.timing import Timing

UNAVAILABLE_SEE_BELOW = "[dim]unavailable: see below[/dim]"
NOT_TIMED_CELLS = ("not timed", "correctness, not speed")  # the timing cells of a provider only checked
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
    """The ceilings' rates, with their timings as the rows show theirs (a noisy ceiling makes every
    "of matmul" or "of copy" share noisy)."""
    table = Table(title="Measured ceilings")
    for name, justify in {"what": "left", "rate": "right", "median ms": "right", "p20-p80 ms": "right"}.items():
        table.add_column(name, justify=justify)
    rates = ((ceilings.matmul, f"{ceilings.matmul_tflops:.3g} TFLOP/s", ceilings.matmul_timing),
             (ceilings.copy, f"{ceilings.copy_gbps:.3g} GB/s", ceilings.copy_timing))
    for what, rate, timing in rates:
        table.add_row(what, rate, *(timing_cells(timing) if timing else ("", "")))
    return table


def timing_cells(timing: Timing) -> tuple[str, str]:
    """The "median ms" cell (marked "noisy" when the spread is too wide to rank, see `Timing`) and the
    "p20-p80 ms" cell with the sample count."""
    median = f"{timing.median_ms:.4g}" + (" noisy" if timing.too_noisy_to_rank else "")
    return median, f"{timing.p20_ms:.4g}-{timing.p80_ms:.4g} n={timing.samples}"


def speedup_cell(speedup: float | None) -> str:
    return f"{speedup:.2f}x" if speedup else ""


def peak_memory_cell(peak_memory_bytes: int | None) -> str:
    """MiB, or "n/a" where the allocator keeps no peak (the CPU)."""
    return "n/a" if peak_memory_bytes is None else f"{peak_memory_bytes / 2**20:,.0f}"


def table_with_sections(title: str, columns: dict[str, str], rows: list[Row],
                        cells: Callable[[Row], tuple[str, ...]]) -> Table:
    """A table of `columns` (name -> justification), a line per row (`cells(row)`), a section per case."""
    table = Table(title=title)
    for name, justify in columns.items():
        table.add_column(name, justify=justify)
    for row, next_row in zip(rows, [*rows[1:], None]):
        table.add_row(*cells(row), end_section=next_row is None or next_row.case != row.case)
    return table


def unavailable_providers_table(rows: Iterable[Row], columns: dict[str, Callable[[list[Row]], str]]) -> Table | None:
    """Why each provider did not run: one line per (provider, reason), so that a reason shared by many
    cases is listed once, with a column per entry of `columns` (name -> text from that line's rows)."""
    rows_by_reason: dict[tuple[str, str], list[Row]] = defaultdict(list)
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


def case_count(rows: list[Row]) -> str:
    return str(len(rows))


def listed(value: Callable[[Row], str]) -> Callable[[list[Row]], str]:
    """A column listing each distinct `value(row)` of the rows once, in order."""
    return lambda rows: ", ".join(dict.fromkeys(value(row) for row in rows))
