"""`python -m benchmarks all`: every benchmark in turn, each into `--out/<name>/`, then a summary table.

The steps are looked up by name among the registered commands when the run starts, so a benchmark that
is not registered is reported "not available" (not a failure) instead of failing the import. A failing
step is recorded and the next one still runs; the exit code is 1 when any step failed or was interrupted
(Ctrl-C or `timeout --signal=INT` in a step stops the run there).

Each step runs in its quick mode unless `--full` is given: the quick run of all of them is the one sized
for a lent GPU session (about 5 minutes on an H100); `--full` runs every sweep whole (far longer).
"""

import argparse
import time
import traceback
from dataclasses import dataclass

from rich.markup import escape
from rich.table import Table

from benchmarks.harness.command_run import INTERRUPTED, Command
from benchmarks.harness.environment import DTYPES
from benchmarks.harness.tables import make_console

STEPS = ("ceilings", "attention", "backward", "masked", "positional", "transformer", "decode", "pipelines")
NOT_AVAILABLE = "not available"


@dataclass(frozen=True)
class StepResult:
    name: str
    status: str  # "ok", "exit N", "failed: <exception>", "not available", "skipped: ..."
    seconds: float | None = None

    @property
    def failed(self) -> bool:
        return self.status not in ("ok", NOT_AVAILABLE)


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--full", action="store_true", help="each benchmark's full sweep (default: its --quick one)")
    parser.add_argument("--dtype", choices=DTYPES, help="passed to the benchmarks that take one")


def run(args: argparse.Namespace) -> int:
    if args.full and args.quick:
        raise SystemExit("all: --full and --quick exclude each other (quick is the default)")
    console = make_console()
    commands = registered_commands()
    results: list[StepResult] = []
    for name in STEPS:
        if any(result.status == f"exit {INTERRUPTED}" for result in results):
            results.append(StepResult(name, "skipped: the run was interrupted"))
            continue
        console.rule(f"all: {name}")
        results.append(run_step(name, commands.get(name), args))
    console.print(summary_table(results))
    return 1 if any(result.failed for result in results) else 0


def registered_commands() -> dict[str, Command]:
    """The registered commands by name."""
    from benchmarks.commands import COMMANDS  # at run time: the registry as it is now

    return {command.name: command for command in COMMANDS}


def run_step(name: str, command: Command | None, args: argparse.Namespace) -> StepResult:
    """One benchmark with the options `all` was given, its output in `args.out / name`."""
    if command is None:
        return StepResult(name, NOT_AVAILABLE)
    started = time.monotonic()
    try:
        step_args = _step_arguments(name, command, args)
        code = step_args.run(step_args)
    except Exception as failure:  # recorded; the next step still runs
        traceback.print_exc()
        return StepResult(name, f"failed: {type(failure).__name__}: {failure}", time.monotonic() - started)
    except SystemExit as stop:  # argparse refusing the step's options
        return StepResult(name, f"failed: {name} refused its options ({stop.code})", time.monotonic() - started)
    return StepResult(name, "ok" if code == 0 else f"exit {code}", time.monotonic() - started)


def _step_arguments(name: str, command: Command, args: argparse.Namespace) -> argparse.Namespace:
    """The step's own parser, fed `all`'s device, out dir and quick mode, and its dtype where it has one."""
    common = argparse.ArgumentParser(add_help=False)
    for option in ("--device", "--out"):
        common.add_argument(option)
    common.add_argument("--quick", action="store_true")
    parser = argparse.ArgumentParser(prog=f"all: {name}")
    command.register(parser.add_subparsers(dest="command"), common)
    step_args = parser.parse_args([name] + (["--quick"] if not args.full else []))
    step_args.device, step_args.out = args.device, args.out / name
    if args.dtype is not None and hasattr(step_args, "dtype"):
        step_args.dtype = args.dtype
    return step_args


def summary_table(results: list[StepResult]) -> Table:
    table = Table(title="all: summary")
    table.add_column("benchmark")
    table.add_column("status")
    table.add_column("time", justify="right")
    for result in results:
        status = f"[bold red]{escape(result.status)}" if result.failed else escape(result.status)
        seconds = "" if result.seconds is None else f"{result.seconds:.0f} s"
        table.add_row(result.name, status, seconds)
    return table


COMMAND = Command("all", f"every benchmark in turn ({', '.join(STEPS)}), each into --out/<name>/", run, add_options)
