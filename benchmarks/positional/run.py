"""`python -m benchmarks positional`: the fused sinusoidal encoding and embedding, ours vs the course's
table add vs torch eager, in GB/s against the card's measured copy ceiling, then the encoding's error at
large positions."""
import argparse

from benchmarks.harness.command_run import Command, CommandRun, add_dtype_option
from benchmarks.positional.cases import positional_cases
from benchmarks.positional.measure import CPU_NOTE, MEASURED, measure_cases
from benchmarks.positional.precision import measure_precision
from benchmarks.positional.report import (
    plot_positional,
    positional_tables,
    precision_table,
    unavailable_positional_table,
)


def run(args: argparse.Namespace) -> int:
    run = CommandRun.start("positional", args, MEASURED, CPU_NOTE)
    ceilings = run.measure_ceilings()
    cases = positional_cases(args.device, args.quick)
    with run.progress() as on_step:
        rows = run.collect(measure_cases(cases, run.dtype, run.stopwatch, ceilings, on_step))
    run.print_tables([*positional_tables(rows), unavailable_positional_table(rows)])
    if not run.interrupted:
        precision_width = 1024 if args.device.type == "cuda" else 64
        with run.console.status("measuring the encoding's error at large positions"):
            windows = measure_precision(args.device, precision_width)
        run.console.print(precision_table(windows, precision_width))
        run.extra["precision"] = {"d_model": precision_width, "windows": [window.as_record() for window in windows]}

    title = f"positional encoding, {run.settings['dtype']}\n{run.metadata['card']}"
    return run.finish(rows, args.out, plot_positional(rows, ceilings, title, args.out))


COMMAND = Command("positional", "sinusoidal encoding and embedding: ours vs table add vs torch eager", run,
                  add_dtype_option)
