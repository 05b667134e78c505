"""The pipelines benchmark on the terminal: per task, the outputs side by side, then agreement, logit
difference, latency and throughput per variant (a variant that was not timed says why in the header
and in the JSON's `timing_note`)."""
from rich.markup import escape
from rich.table import Table

from benchmarks.pipelines.compare import TaskResult

_SHOWN_IDS = 8
_SHOWN_CHARS = 48


def _short(text: str, limit: int = _SHOWN_CHARS) -> str:
    text = repr(text)[1:-1]  # control characters a random model may emit stay visible and harmless
    return text if len(text) <= limit else f"{text[:limit - 1]}…"


def _ids(ids: list[int]) -> str:
    shown = ", ".join(map(str, ids[:_SHOWN_IDS]))
    return f"[{shown}{', …' if len(ids) > _SHOWN_IDS else ''}] ({len(ids)})"


def _example(example) -> str:
    if isinstance(example, tuple):
        question, context = example
        return f"{_short(question, 32)} | {_short(context, 24)} ({len(context)} chars)"
    return f"{_short(example, 40)} ({len(example)} chars)"


_PREDICTION_FORMATS = {
    "text-classification": lambda r: f"{r['label']} {r['score']:.5f}",
    "text-generation": lambda r: _ids(r["new_token_ids"]),
    "summarization": lambda r: f"{_short(r['summary'], 24)} {_ids(r['token_ids'])}",
    "question-answering": lambda r: f"{_short(r['answer'], 24)} [{r['start']}:{r['end']}] {r['score']:.4f}",
    "feature-extraction": lambda r: "[" + ", ".join(f"{x:.5f}" for x in r["embedding"][:3]) + ", …]",
}


def outputs_table(result: TaskResult) -> Table:
    shown = _PREDICTION_FORMATS[result.task.name]
    table = Table(title=f"{result.task.name}: outputs side by side (rule: {result.task.rule(result.settings)})")
    table.add_column("#", justify="right")
    table.add_column("input")
    for variant in result.variants:
        table.add_column(variant.variant)
    bad = {(v.variant, mismatch.example) for v in result.variants for mismatch in v.mismatches}
    for i, example in enumerate(result.examples):
        cells = []
        for variant in result.variants:
            text = escape(shown(variant.predictions[i]))
            cells.append(f"[bold red]{text}" if (variant.variant, i) in bad else text)
        table.add_row(str(i), escape(_example(example)), *cells)
    return table


def _rate(value: float | None) -> str:
    return f"{value:,.1f}" if value is not None else ""


def performance_table(result: TaskResult) -> Table:
    record = result.as_record()
    table = Table(title=f"{result.task.name}: {result.model}; {record['implementation']}")
    for name in ("variant", f"same as {result.reference}"):
        table.add_column(name)
    for name in ("max |Δ logit|", "our kernel calls", "median ms", "p20-p80 ms", "examples/s", "tokens/s",
                 f"vs {result.reference}"):
        table.add_column(name, justify="right")
    for row in record["variants"]:
        agrees = "yes" if row["agrees_with_reference"] else (
            f"[bold red]NO ({len(row['mismatches'])} differ)" if row["mismatches"] else "[bold red]NO (see below)")
        if row["median_ms"] is None:
            timing = ("[dim]not timed", "", "", "", "")
        else:
            timing = (f"{row['median_ms']:.4g}", f"{row['p20_ms']:.4g}-{row['p80_ms']:.4g}",
                      _rate(row["examples_per_s"]), _rate(row["tokens_per_s"]),
                      f"{row['speedup_vs_reference']:.2f}x")
        table.add_row(row["variant"], agrees, f"{row['max_logit_difference']:.2e}", str(row["triton_kernel_calls"]),
                      *timing)
    for variant, reason in result.unavailable.items():
        table.add_row(variant, "[dim]not run", "", "", f"[dim]{escape(reason)}", "", "", "", "")
    return table


def problem_lines(result: TaskResult) -> list[str]:
    lines = []
    for variant in result.variants:
        if variant.problem:
            lines.append(f"{result.task.name} / {variant.variant}: {variant.problem}")
        lines += [f"{result.task.name} / {variant.variant}: {m}" for m in variant.mismatches]
    return lines
