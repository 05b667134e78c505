"""What every measuring command is and does around its own measurements: a `Command` (its name and
parser), the --dtype option, and a `CommandRun`: the run's settings and header, the card's ceilings, the
rows collected with a progress bar until Ctrl-C, and the JSON, the plots and the exit code.

Ctrl-C (or `timeout --signal=INT`, as benchmarks/gpu_session.sh stops a step that runs out of time)
ends the measuring loop, not the command: the rows measured so far are still printed and written,
the JSON says `"interrupted": true`, and the exit code is 130.
"""
import argparse
import contextlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from benchmarks.harness.ceilings import Ceilings, measure_ceilings
from benchmarks.harness.environment import DTYPES, default_dtype, dtype_name, run_metadata
from benchmarks.harness.results_file import write_results
from benchmarks.harness.rows import Row
from benchmarks.harness.tables import ceilings_table, header, make_console
from benchmarks.harness.timing import Stopwatch

INTERRUPTED = 130  # the shell's code for a run stopped by SIGINT


def no_options(parser: argparse.ArgumentParser) -> None:
    return None


@dataclass(frozen=True)
class Command:
    """A subcommand of `python -m benchmarks`: its name and help line, `run(args) -> exit code`, the options
    of its own (`add_options(parser)`), and whether it measures (then it takes the shared --device, --quick
    and --out options)."""

    name: str
    help: str
    run: Callable[[argparse.Namespace], int]
    add_options: Callable[[argparse.ArgumentParser], None] = no_options
    measures: bool = True

    def register(self, subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
        """Add its parser (`common`: the shared options, a parent) with `run` as the parser's default."""
        parser = subparsers.add_parser(self.name, parents=[common] if self.measures else [], help=self.help)
        self.add_options(parser)
        parser.set_defaults(run=self.run)


def add_dtype_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dtype", choices=DTYPES, help="default: bf16 on CUDA, fp32 on the CPU")


def chosen_dtype(args: argparse.Namespace) -> torch.dtype:
    return DTYPES[args.dtype] if args.dtype else default_dtype(args.device)


def on_a_gpu(command: str) -> str:
    """What a CPU run's header says to run for the real numbers."""
    return f"run `python -m benchmarks {command}` on a machine with CUDA to time our kernels on every shape"


@dataclass
class CommandRun:
    """One run of a benchmark command: where and how it measures, and what it has measured so far."""

    benchmark: str  # the JSON's "benchmark" and its file name
    device: torch.device
    dtype: torch.dtype
    stopwatch: Stopwatch
    metadata: dict
    settings: dict
    console: Console
    interrupted: bool = False
    ceilings: Ceilings | None = None
    extra: dict = field(default_factory=dict)  # more top-level JSON fields

    @classmethod
    def start(cls, benchmark: str, args: argparse.Namespace, measured, cpu_note: str | None = None,
              note: str | None = None, thread_cpu_time: bool = False) -> "CommandRun":
        """Settings from the arguments (`measured` says what the numbers are; `note` what else a reader must
        know, `cpu_note` that on the CPU only; `thread_cpu_time` as Stopwatch's), the header printed.
        Settings added later are not shown."""
        dtype = chosen_dtype(args)
        stopwatch = Stopwatch(args.device, args.quick, thread_cpu_time=thread_cpu_time)
        settings = {"measured": measured, "dtype": dtype_name(dtype), "timing": stopwatch.describe(),
                    "quick": args.quick}
        if note is None and args.device.type == "cpu":
            note = cpu_note
        if note is not None:
            settings["note"] = note
        run = cls(benchmark, args.device, dtype, stopwatch, run_metadata(args.device), settings, make_console())
        shown = {key: str(value) for key, value in settings.items() if key != "measured"}
        shown = {**measured, **shown} if isinstance(measured, dict) else {"measured": str(measured), **shown}
        if args.device.type == "cpu":
            shown = {"on a GPU": on_a_gpu(benchmark), **shown}
        run.console.print(header(benchmark, run.metadata, shown))
        return run

    def measure_ceilings(self) -> Ceilings:
        with self.console.status("measuring the card's ceilings"):
            self.ceilings = measure_ceilings(self.stopwatch)
        self.console.print(ceilings_table(self.ceilings))
        return self.ceilings

    @contextlib.contextmanager
    def progress(self, steps: int | None = None) -> Iterator[Callable[[str], None]]:
        """A progress bar over `steps` (case, provider) steps while measuring; yields the `on_step(description)`
        the measuring loop calls before each step."""
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=self.console, transient=True) as progress:
            task = progress.add_task(self.benchmark, total=steps)
            done = itertools.count()
            yield lambda description: progress.update(task, completed=next(done), description=description)

    def collect(self, rows: Iterable[Row | list[Row]]) -> list[Row]:
        """Every row `rows` yields (a row, or a list of rows per step), until it ends or Ctrl-C stops it."""
        collected = []
        try:
            for item in rows:
                collected += item if isinstance(item, list) else [item]
        except KeyboardInterrupt:
            self.interrupted = True
        return collected

    def print_tables(self, tables: Iterable[Table | None]) -> None:
        """Each table, skipping the None of a table with nothing to show (no unavailable provider)."""
        for table in tables:
            if table is not None:
                self.console.print(table)

    def finish(self, rows: list[Row], out: Path, plots: list[Path] | None = None) -> int:
        """Write the JSON (environment, settings, ceilings, every row), say where; the exit code."""
        payload = {"benchmark": self.benchmark, "interrupted": self.interrupted, "environment": self.metadata,
                   "settings": self.settings}
        if self.ceilings is not None:
            payload["ceilings"] = asdict(self.ceilings)
        payload.update(self.extra)
        payload["rows"] = [row.as_record() for row in rows]
        json_path = write_results(out, self.benchmark, payload)
        plotted = "" if plots is None else f" and {len(plots)} plots in {out}"
        self.console.print(f"wrote {json_path}{plotted}")
        if self.interrupted:
            self.console.print(f"[bold red]interrupted: {len(rows)} rows measured")
            return INTERRUPTED
        return 0
