"""The compile report: a worst-case summary per (kernel, dtype, arch), the rows that break a rule
(checks.py), as rich tables on the terminal and as JSON + markdown in the output folder."""
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from benchmarks.compile.checks import RULES, problems
from benchmarks.compile.targets import Arch
from benchmarks.harness.environment import run_metadata
from benchmarks.harness.results_file import write_results

_SUMMARY_COLUMNS = ("launcher", "kernel", "dtype", "arch", "compiles", "failed", "max regs", "max spill st/ld B",
                    "max smem KiB (limit)", "min blocks/SM", "MMA", "TMA loads", "max SASS", "max compile s")
_PROBLEM_COLUMNS = ("rule", "kernel", "dtype", "arch", "tile", "head dims", "variants", "worst")
_YARDSTICK_COLUMNS = ("arch", "dtype", "head dim", "tile", "regs", "SASS", "key-loop SASS")


def write_report(rows: list[dict], archs: list[Arch], settings: dict, out: Path) -> None:
    summary = summarise(rows)
    broken = grouped_problems(rows)
    yardstick = yardstick_comparison(rows)
    payload = {
        "benchmark": "compile",
        "environment": run_metadata(torch.device("cpu")),
        "settings": settings,
        "archs": [asdict(arch) for arch in archs],
        "rules": {rule.name: rule.why for rule in RULES},
        "summary": summary,
        "problems": broken,
        "yardstick": yardstick,
        "rows": rows,
    }
    console = Console(width=200)
    console.print(_table("worst case per kernel, dtype and arch", _SUMMARY_COLUMNS, summary))
    console.print(_table(f"rules broken ({len(broken)} groups)", _PROBLEM_COLUMNS, broken))
    if yardstick:
        console.print(_table(_YARDSTICK_TITLE, _YARDSTICK_COLUMNS, yardstick))
    json_path = write_results(out, "compile", payload)
    markdown_path = out / "compile.md"
    markdown_path.write_text(markdown(payload))
    console.print(f"wrote {json_path} and {markdown_path}")


def summarise(rows: list[dict]) -> list[dict]:
    groups = defaultdict(list)
    for row in rows:
        groups[(row["launcher"], row["kernel"], row["dtype"], row["arch"])].append(row)
    summary = []
    for (launcher, kernel, dtype, arch), group in groups.items():
        ok = [row for row in group if row["error"] is None]
        summary.append({
            "launcher": launcher, "kernel": kernel, "dtype": dtype, "arch": arch,
            "compiles": len(group), "failed": len(group) - len(ok),
            "max regs": max((row["registers"] for row in ok), default="-"),
            "max spill st/ld B": _worst_spill(ok),
            "max smem KiB (limit)": _worst_shared(ok),
            "min blocks/SM": min((row["blocks_per_sm"] for row in ok), default="-"),
            "MMA": " / ".join(sorted({"+".join(row["mma"]) or "none" for row in ok})) or "-",
            "TMA loads": max((row["tma_loads"] for row in ok), default="-"),
            "max SASS": max((row["sass_instructions"] for row in ok), default="-"),
            "max compile s": max((row["compile_seconds"] for row in ok), default="-"),
        })
    return summary


def grouped_problems(rows: list[dict]) -> list[dict]:
    """Rule breaks, one entry per (rule, kernel, dtype, arch, tile) with the head dims and variants
    it happens at and its worst value."""
    groups = defaultdict(list)
    for row, rules in problems(rows):
        for rule in rules:
            groups[(rule, row["kernel"], row["dtype"], row["arch"], row["tile"])].append(row)
    return [
        {"rule": rule, "kernel": kernel, "dtype": dtype, "arch": arch, "tile": tile,
         "head dims": " ".join(str(d) for d in sorted({row["head_dim"] for row in group})),
         "variants": " ".join(sorted({row["variant"] + ("" if row["autotune"] else " (untimed)") for row in group})),
         "worst": _worst(rule, group)}
        for (rule, kernel, dtype, arch, tile), group in sorted(groups.items())
    ]


_YARDSTICK_TITLE = "forward without mask (ours) / yardstick (compile/yardstick.py), same tile"


def yardstick_comparison(rows: list[dict]) -> list[dict]:
    """The forward's maskless rows next to the yardstick's at the same (arch, dtype, head dim, tile):
    registers, SASS instructions and those of the key loop, as "ours / yardstick"."""
    def key(row: dict) -> tuple:
        return row["arch"], row["dtype"], row["head_dim"], row["tile"]

    yardsticks = {key(row): row for row in rows if row["launcher"] == "yardstick" and row["error"] is None}
    forwards = [row for row in rows if row["kernel"] == "attention_forward_kernel" and row["variant"] == "none"
                and row["autotune"] and row["error"] is None and key(row) in yardsticks]
    return [
        {"arch": row["arch"], "dtype": row["dtype"], "head dim": row["head_dim"], "tile": row["tile"],
         **{column: f"{row[field]} / {yardsticks[key(row)][field]}"
            for column, field in (("regs", "registers"), ("SASS", "sass_instructions"),
                                  ("key-loop SASS", "loop_sass_instructions"))}}
        for row in forwards
    ]


def _worst(rule: str, group: list[dict]) -> str:
    if rule == "compiles":
        return group[0]["error"]
    if rule == "fits shared memory":
        return _worst_shared(group)
    if rule == "no spills":
        return _worst_spill(group)
    return " / ".join(sorted({"+".join(row["mma"]) or "none" for row in group}))


def _worst_spill(rows: list[dict]) -> str:
    if not rows:
        return "-"
    worst = max(rows, key=lambda row: (row["spill_store_bytes"], row["spill_load_bytes"]))
    return f"{worst['spill_store_bytes']}/{worst['spill_load_bytes']}"


def _worst_shared(rows: list[dict]) -> str:
    if not rows:
        return "-"
    worst = max(rows, key=lambda row: row["shared_bytes"])
    return f"{worst['shared_bytes'] / 1024:.0f} ({worst['shared_limit'] / 1024:.0f})"


def _table(title: str, columns: tuple[str, ...], entries: list[dict]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for entry in entries:
        table.add_row(*(str(entry[column]) for column in columns))
    return table


def markdown(payload: dict) -> str:
    environment, settings = payload["environment"], payload["settings"]
    lines = [
        "# Compile report",
        "",
        f"Generated by `python -m benchmarks compile` on {environment['date']}: triton {environment['triton']}, "
        f"torch {environment['torch']}, commit {environment['git_commit'] or 'unknown'}.",
        f"Architectures {', '.join(settings['arch'])}; tiles: {settings['tiles']}; quick: {settings['quick']}; "
        f"{len(payload['rows'])} rows in {settings['wall_seconds']} s on {settings['jobs']} processes.",
        "",
        "## Worst case per kernel, dtype and arch",
        "",
        *_markdown_table(_SUMMARY_COLUMNS, payload["summary"]),
        "",
        f"## Rules broken ({len(payload['problems'])} groups)",
        "",
        *(f"- **{name}**: {why}" for name, why in payload["rules"].items()),
        "",
        *(_markdown_table(_PROBLEM_COLUMNS, payload["problems"]) if payload["problems"] else ["None."]),
    ]
    if payload["yardstick"]:
        lines += ["", f"## The {_YARDSTICK_TITLE}", "", *_markdown_table(_YARDSTICK_COLUMNS, payload["yardstick"])]
    return "\n".join(lines) + "\n"


def _markdown_table(columns: tuple[str, ...], entries: list[dict]) -> list[str]:
    return [
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(str(entry[column]).replace("|", "\\|") for column in columns) + " |" for entry in entries),
    ]
