"""What every measuring subcommand does around its own measurements: the --dtype option, the run's
settings and header, the card's ceilings, the rows collected until Ctrl-C, and the JSON and exit code.

Ctrl-C (or `timeout --signal=INT`, as benchmarks/gpu_session.sh stops a step that runs out of time)
ends the measuring loop, not the command: the rows measured so far are still printed and written,
the JSON says `"interrupted": true`, and the exit code is 130.
"""
import argparse
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from rich.console import Console

from benchmarks.ceilings import Ceilings, measure_ceilings
from benchmarks.environment import DTYPES, dtype_name, run_metadata
from benchmarks.results_file import write_results
from benchmarks.table import ceilings_table, header, make_console
from benchmarks.timing import Stopwatch

INTERRUPTED = 130  # the shell's code for a run stopped by SIGINT


def add_dtype_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dtype", choices=DTYPES, help="default: bf16 on CUDA, fp32 on the CPU")


def chosen_dtype(args: argparse.Namespace) -> torch.dtype:
    return DTYPES[args.dtype or ("bf16" if args.device.type == "cuda" else "fp32")]


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
    def start(cls, benchmark: str, args: argparse.Namespace, measured, cpu_note: str | None = None) -> "CommandRun":
        """Settings from the arguments (`measured` says what the numbers are), the header printed."""
        dtype = chosen_dtype(args)
        stopwatch = Stopwatch(args.device, args.quick)
        settings = {"measured": measured, "dtype": dtype_name(dtype), "timing": stopwatch.describe(),
                    "quick": args.quick}
        if args.device.type == "cpu" and cpu_note is not None:
            settings["note"] = cpu_note
        run = cls(benchmark, args.device, dtype, stopwatch, run_metadata(args.device), settings, make_console())
        shown = {key: str(value) for key, value in settings.items() if key != "measured"}
        shown = {**measured, **shown} if isinstance(measured, dict) else {"measured": str(measured), **shown}
        run.console.print(header(benchmark, run.metadata, shown))
        return run

    def measure_ceilings(self) -> Ceilings:
        with self.console.status("measuring the card's ceilings"):
            self.ceilings = measure_ceilings(self.stopwatch)
        self.console.print(ceilings_table(self.ceilings))
        return self.ceilings

    def collect(self, rows: Iterable) -> list:
        """Every row `rows` yields (a row, or a list of rows per step), until it ends or Ctrl-C stops it."""
        collected = []
        try:
            for item in rows:
                collected += item if isinstance(item, list) else [item]
        except KeyboardInterrupt:
            self.interrupted = True
        return collected

    def finish(self, rows: list, out: Path, plots: list[Path] | None = None) -> int:
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
