"""The body of the attention sweep commands (`attention`, `backward`): measure every case with a progress
bar, print the tables, write the JSON and the plots. A command is a `Sweep`: its name, its modes and its
cases (`attention`, `backward`: no mask, causal, key padding; `masked`: the masks users have)."""

import argparse
import itertools
from dataclasses import asdict, dataclass

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks.attention_inputs import AttentionCase
from benchmarks.attention_modes import Mode, describe_modes
from benchmarks.attention_providers import Provider, attention_providers
from benchmarks.attention_suite import ATTENTION_CASES, AttentionRow, CaseSet, attention_cases, measure_cases
from benchmarks.ceilings import Ceilings, measure_ceilings
from benchmarks.command_run import INTERRUPTED, add_dtype_option, chosen_dtype
from benchmarks.environment import dtype_name, run_metadata
from benchmarks.plot import plot_attention
from benchmarks.results_file import write_results
from benchmarks.table import attention_tables, ceilings_table, header, make_console, unavailable_table
from benchmarks.timing import Stopwatch


@dataclass(frozen=True)
class Sweep:
    name: str  # the subcommand: also the JSON's "benchmark", its file name and the plots' prefix
    title: str  # what the plots say was measured
    modes: tuple[Mode, ...]
    case_set: CaseSet = ATTENTION_CASES
    note: str | None = None  # what else a reader of the tables must know (printed and written to the JSON)

    @property
    def gradients(self) -> bool:
        return any(mode.needs_gradients for mode in self.modes)


def register_sweep(
    subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser, sweep: Sweep, help_text: str
) -> None:
    parser = subparsers.add_parser(sweep.name, parents=[common], help=help_text)
    add_dtype_option(parser)
    parser.set_defaults(run=lambda args: run_sweep(args, sweep))


def run_sweep(args: argparse.Namespace, sweep: Sweep) -> int:
    device = args.device
    dtype = chosen_dtype(args)
    stopwatch = Stopwatch(device, args.quick)
    cases = attention_cases(device, args.quick, sweep.gradients, sweep.case_set)
    providers = attention_providers(device)
    metadata = run_metadata(device)
    settings = {
        "measured": describe_modes(sweep.modes),
        "modes": [mode.value for mode in sweep.modes],
        "dtype": dtype_name(dtype),
        "timing": stopwatch.describe(),
        "quick": args.quick,
        "providers": {p.name: p.label for p in providers},
    }
    if sweep.note:
        settings["note"] = sweep.note

    console = make_console()
    shown = {k: str(v) for k, v in settings.items() if k not in ("providers", "modes")}
    console.print(header(sweep.name, metadata, shown))
    with console.status("measuring the card's ceilings"):
        ceilings = measure_ceilings(stopwatch)
    console.print(ceilings_table(ceilings))
    rows, interrupted = _run_with_progress(console, sweep, cases, providers, dtype, stopwatch, ceilings)
    for table in attention_tables(rows):
        console.print(table)
    unavailable = unavailable_table(rows)
    if unavailable is not None:
        console.print(unavailable)

    payload = {
        "benchmark": sweep.name,
        "interrupted": interrupted,
        "environment": metadata,
        "settings": settings,
        "ceilings": asdict(ceilings),
        "rows": [row.as_record() for row in rows],
    }
    json_path = write_results(args.out, sweep.name, payload)
    title = f"{sweep.title}, {dtype_name(dtype)}, {metadata['card']}"
    plots = plot_attention(rows, ceilings, title, args.out, sweep.name)
    console.print(f"wrote {json_path} and {len(plots)} plots in {args.out}")
    if interrupted:
        measured, total = len(rows) // len(providers), len(cases) * len(sweep.modes)
        console.print(f"[bold red]interrupted: {measured} of {total} (case, mode) pairs measured")
        return INTERRUPTED
    return 0


def _run_with_progress(
    console: Console,
    sweep: Sweep,
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
        task = progress.add_task(sweep.name, total=len(cases) * len(sweep.modes) * len(providers))
        steps_done = itertools.count()

        def on_step(description: str) -> None:
            progress.update(task, completed=next(steps_done), description=description)

        try:
            measured = measure_cases(cases, providers, dtype, stopwatch, ceilings, on_step, sweep.modes)
            for mode_rows in measured:
                rows += mode_rows
        except KeyboardInterrupt:
            return rows, True
    return rows, False
