"""The terminal table of a parity sweep (rich: the `bench` extra, needed by the parity commands only)."""

from rich.table import Table

from kernels.testing.attention_specs import DTYPE_NAMES
from kernels.testing.parity_sweep import ParityRow


def parity_table(rows: list[ParityRow]) -> Table:
    table = Table(title="Max error against the float64 reference: ours vs PyTorch's in the same precision")
    table.add_column("case")
    table.add_column("dtype")
    for name in ("max |err|", "PyTorch's", "ratio", "allowed", "max rel"):
        table.add_column(name, justify="right")
    table.add_column("verdict")
    for row in rows:
        table.add_row(row.spec.label, DTYPE_NAMES[row.spec.dtype], *_numbers(row), _verdict(row))
    return table


def _numbers(row: ParityRow) -> tuple[str, ...]:
    result = row.result
    if result is None:
        return ("",) * 5
    return (
        f"{result.max_abs_error:.2e}",
        f"{result.baseline_max_abs_error:.2e}",
        f"{result.error_ratio:.2f}x",
        f"{result.allowed_max_abs_error:.2e}",
        f"{result.max_rel_error:.2e}",
    )


def _verdict(row: ParityRow) -> str:
    if row.passed:
        return "[green]PASS"
    reason = row.failure or row.result.problem or "error above the allowed"
    return f"[bold red]FAIL[/bold red] {reason}"
