"""`python -m benchmarks attention`: the attention forward, ours vs every torch SDPA backend vs reference."""

import argparse
import itertools
from dataclasses import asdict

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks.attention_inputs import AttentionCase
from benchmarks.attention_providers import Provider, attention_providers
from benchmarks.attention_suite import MEASURED, AttentionRow, attention_cases, measure_cases
from benchmarks.ceilings import Ceilings, measure_ceilings
from benchmarks.environment import DTYPES, dtype_name, run_metadata
from benchmarks.plot import plot_attention
from benchmarks.results_file import write_results
from benchmarks.table import attention_tables, ceilings_table, header, make_console, unavailable_table
from benchmarks.timing import Stopwatch


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "attention", parents=[common], help="attention forward: ours vs torch SDPA backends vs reference"
    )
    parser.add_argument("--dtype", choices=DTYPES, help="default: bf16 on CUDA, fp32 on the CPU")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    device = args.device
    dtype = DTYPES[args.dtype or ("bf16" if device.type == "cuda" else "fp32")]
    stopwatch = Stopwatch(device, args.quick)
    cases = attention_cases(device, args.quick)
    providers = attention_providers(device)
    metadata = run_metadata(device)
    settings = {
        "measured": MEASURED,
        "dtype": dtype_name(dtype),
        "timing": stopwatch.describe(),
        "quick": args.quick,
        "providers": {p.name: p.label for p in providers},
    }

    console = make_console()
    console.print(header("attention", metadata, {k: str(v) for k, v in settings.items() if k != "providers"}))
    with console.status("measuring the card's ceilings"):
        ceilings = measure_ceilings(stopwatch)
    console.print(ceilings_table(ceilings))
    rows, interrupted = _run_with_progress(console, cases, providers, dtype, stopwatch, ceilings)
    for table in attention_tables(rows):
        console.print(table)
    unavailable = unavailable_table(rows)
    if unavailable is not None:
        console.print(unavailable)

    payload = {
        "benchmark": "attention",
        "interrupted": interrupted,
        "environment": metadata,
        "settings": settings,
        "ceilings": asdict(ceilings),
        "rows": [row.as_record() for row in rows],
    }
    json_path = write_results(args.out, "attention", payload)
    title = f"attention forward, {dtype_name(dtype)}, {metadata['card']}"
    plots = plot_attention(rows, ceilings, title, args.out)
    console.print(f"wrote {json_path} and {len(plots)} plots in {args.out}")
    if interrupted:
        console.print(f"[bold red]interrupted: {len(rows) // len(providers)} of {len(cases)} cases measured")
        return 130  # the shell's code for a run stopped by SIGINT
    return 0


def _run_with_progress(
    console: Console,
    cases: list[AttentionCase],
    providers: list[Provider],
    dtype: torch.dtype,
    stopwatch: Stopwatch,
    ceilings: Ceilings,
) -> tuple[list[AttentionRow], bool]:
    """The rows of every case measured, and whether Ctrl-C (or `timeout --signal=INT`) cut the run short."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    rows: list[AttentionRow] = []
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("attention", total=len(cases) * len(providers))
        steps_done = itertools.count()

        def on_step(description: str) -> None:
            progress.update(task, completed=next(steps_done), description=description)

        try:
            for case_rows in measure_cases(cases, providers, dtype, stopwatch, ceilings, on_step):
                rows += case_rows
        except KeyboardInterrupt:
            return rows, True
    return rows, False
